"""Edges between stages, with two explicit policies.

* `LiveEdge` (real time): capacity 1, a new frame replaces the waiting one
  (drop the oldest, like GStreamer's ``leaky=downstream``), every drop counted
  and reported through ``on_drop`` so the runtime releases the frame's
  in-flight token. ``put`` never waits, so a slow stage never stalls the ones
  before it and latency stays bounded.
* `LosslessEdge` (offline rendering): bounded FIFO with blocking backpressure;
  nothing is dropped and order is kept.

Both are used only from the event loop thread.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable

from pipeline.frame import Frame


class EdgePolicy(enum.Enum):
    LIVE = "live"
    LOSSLESS = "lossless"


class LiveEdge:
    """Capacity-1, drop-oldest edge; the one owner of its drop count.

    ``on_drop`` is told which frame was dropped (the runtime releases its
    token); it does not count it again.
    """

    policy = EdgePolicy.LIVE

    def __init__(self, name: str, on_drop: Callable[[Frame], None] | None = None) -> None:
        self.name = name
        self._drops = 0
        self._slot: Frame | None = None
        self._ready = asyncio.Event()
        self._on_drop = on_drop

    @property
    def drops(self) -> int:
        """Frames this edge replaced before the next stage took them."""
        return self._drops

    async def put(self, frame: Frame) -> None:
        self.put_nowait(frame)

    def put_nowait(self, frame: Frame) -> None:
        old, self._slot = self._slot, frame
        self._ready.set()
        if old is not None:
            self._drops += 1
            if self._on_drop is not None:
                self._on_drop(old)

    async def get(self) -> Frame:
        while self._slot is None:
            self._ready.clear()
            await self._ready.wait()
        frame, self._slot = self._slot, None
        return frame

    def qsize(self) -> int:
        return 0 if self._slot is None else 1

    def drain(self) -> list[Frame]:
        """Remove and return what waits in the edge (used at shutdown)."""
        frame, self._slot = self._slot, None
        return [] if frame is None else [frame]


class LosslessEdge:
    """Bounded FIFO with blocking backpressure; never drops, keeps order."""

    policy = EdgePolicy.LOSSLESS

    def __init__(self, name: str, capacity: int = 4) -> None:
        if capacity < 1:
            raise ValueError(f"edge capacity must be >= 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self._items: deque[Frame] = deque()
        self._changed = asyncio.Condition()

    async def put(self, frame: Frame) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._items) < self.capacity)
            self._items.append(frame)
            self._changed.notify_all()

    async def get(self) -> Frame:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            frame = self._items.popleft()
            self._changed.notify_all()
            return frame

    @property
    def drops(self) -> int:
        """Always 0; kept so both edges report the same counters."""
        return 0

    def qsize(self) -> int:
        return len(self._items)

    def drain(self) -> list[Frame]:
        items = list(self._items)
        self._items.clear()
        return items


Edge = LiveEdge | LosslessEdge


def make_edge(
    policy: EdgePolicy,
    name: str,
    *,
    capacity: int,
    on_drop: Callable[[Frame], None],
) -> Edge:
    if policy is EdgePolicy.LIVE:
        return LiveEdge(name, on_drop)
    return LosslessEdge(name, capacity)
