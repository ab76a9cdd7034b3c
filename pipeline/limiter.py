"""Flow limiting at the head of the graph (MediaPipe's FlowLimiter idea).

A frame takes a token when it enters the graph and gives it back when it
leaves: delivered by the sink, dropped on an edge, dropped by a stage, or
failed. With ``max_in_flight`` tokens the graph never holds more frames than
it can use, so live sources drop *before* compute is spent on a frame that
would be dropped later, and offline sources wait instead of piling up.

The limit may change during a run (`set_limit`, driven by
`pipeline.in_flight.InFlightController` in live mode). Lowering it never
revokes a token already given: the frames in flight finish, and the head
admits again once fewer than the new limit remain.

Used only from the event loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

OnChange = Callable[[int, int], None]
"""Told ``(in_flight, limit)`` after every change of either (metrics)."""


class FlowLimiter:
    """Tokens for the frames in flight; the owner of the head's drop count.

    Only its own methods change ``in_flight``, ``drops`` and the limit; the
    runtime reads them through the properties. ``on_change``, if given, is
    called after each change of ``in_flight`` or of the limit, so a gauge can
    integrate frames in flight over time without a copy that could disagree.
    """

    def __init__(self, max_in_flight: int, on_change: OnChange | None = None) -> None:
        _check_limit(max_in_flight)
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._drops = 0
        self._freed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_change = on_change

    @property
    def max_in_flight(self) -> int:
        """The current limit (fixed, or the adaptive controller's latest)."""
        return self._max_in_flight

    def set_limit(self, max_in_flight: int) -> None:
        """Change the limit; tokens already given stay given (see the module docstring)."""
        _check_limit(max_in_flight)
        if max_in_flight == self._max_in_flight:
            return
        self._max_in_flight = max_in_flight
        self._freed.set()  # a waiting offline admission re-checks against the new limit
        self._changed()

    @property
    def in_flight(self) -> int:
        """Frames admitted and not yet released (one above the limit while a
        replacing frame is admitted and before the replaced one is released)."""
        return self._in_flight

    @property
    def drops(self) -> int:
        """Frames refused at the head (live admission with no token to give)."""
        return self._drops

    def try_acquire(self, *, replacing: bool = False) -> bool:
        """Take a token if one is free (live admission); count a head drop if not.

        ``replacing``: the new frame replaces one still waiting at the head,
        whose token comes back as soon as that frame is dropped. The token is
        then taken even when none is free, and nothing is dropped here: the
        drop is the replaced frame's, counted by the edge that drops it.
        """
        if self._in_flight >= self._max_in_flight and not replacing:
            self._drops += 1
            return False
        self._take()
        return True

    async def acquire(self) -> None:
        """Wait for a token (offline admission: backpressure, no drop)."""
        while self._in_flight >= self._max_in_flight:
            self._freed.clear()
            await self._freed.wait()
        self._take()

    def _take(self) -> None:
        self._in_flight += 1
        self._idle.clear()
        self._changed()

    def release(self) -> None:
        """Give a frame's token back: it was delivered, dropped, filtered or failed."""
        if self._in_flight <= 0:
            raise RuntimeError("FlowLimiter released more tokens than it handed out")
        self._in_flight -= 1
        self._freed.set()
        if self._in_flight == 0:
            self._idle.set()
        self._changed()

    async def wait_idle(self) -> None:
        """Return once every admitted frame has left the graph."""
        await self._idle.wait()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._in_flight, self._max_in_flight)


def _check_limit(max_in_flight: int) -> None:
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
