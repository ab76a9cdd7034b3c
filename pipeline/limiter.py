"""Flow limiting at the head of the graph (MediaPipe's FlowLimiter idea).

A frame takes a token when it enters the graph and gives it back when it
leaves: delivered by the sink, dropped on an edge, dropped by a stage, or
failed. With ``max_in_flight`` tokens the graph never holds more frames than
it can use, so live sources drop *before* compute is spent on a frame that
would be dropped later, and offline sources wait instead of piling up.

Used only from the event loop thread.
"""

from __future__ import annotations

import asyncio


class FlowLimiter:
    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.drops = 0
        self._freed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def try_acquire(self) -> bool:
        """Take a token if one is free (live admission); count a drop if not."""
        if self.in_flight >= self.max_in_flight:
            self.drops += 1
            return False
        self._take()
        return True

    async def acquire(self) -> None:
        """Wait for a token (offline admission: backpressure, no drop)."""
        while self.in_flight >= self.max_in_flight:
            self._freed.clear()
            await self._freed.wait()
        self._take()

    def _take(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def release(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("FlowLimiter released more tokens than it handed out")
        self.in_flight -= 1
        self._freed.set()
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once every admitted frame has left the graph."""
        await self._idle.wait()
