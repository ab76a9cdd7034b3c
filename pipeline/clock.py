"""Time sources for the runtime.

The runtime never calls ``time`` directly: it asks a `Clock`, so tests can
run the same code with a clock they control.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time in nanoseconds and an awaitable sleep until a deadline."""

    def now_ns(self) -> int: ...

    async def sleep_until(self, deadline_ns: int) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic_ns`` and ``asyncio.sleep``."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep_until(self, deadline_ns: int) -> None:
        delay = (deadline_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that only moves when told to; ``sleep_until`` jumps to the deadline.

    Useful for driving paced sources in tests without real waiting.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self._now += ns

    async def sleep_until(self, deadline_ns: int) -> None:
        self._now = max(self._now, deadline_ns)
        await asyncio.sleep(0)
