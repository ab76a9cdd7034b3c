"""A latest-frame slot: one producer thread keeps replacing, readers take the newest.

A camera (or a network track) delivers frames at its own pace; the graph may
be slower. Queueing every frame would make latency grow without bound, so the
producer overwrites a single slot and a reader waits only for a frame *newer*
than the one it took last. Frames the reader never saw are counted as
replaced. Shared by `CameraSource` and the WebRTC track source.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Slotted(Generic[T]):
    """One item taken from the slot.

    Attributes:
        item: what the producer put.
        number: 1 for the first item ever put, +1 for each put; a reader
            passes the last number it saw to wait for a newer one.
        put_ns: the producer's timestamp (monotonic ns) given to `put`.
    """

    item: T
    number: int
    put_ns: int


class LatestSlot(Generic[T]):
    """A thread-safe single-item slot with "wait for newer than N" reads.

    ``close()`` wakes every waiter; after it, `wait_newer` returns ``None``
    at once. ``replaced`` counts items overwritten before anyone read them.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._current: Slotted[T] | None = None
        self._taken = 0
        self._closed = False
        self.replaced = 0

    def put(self, item: T, put_ns: int) -> int:
        """Store ``item`` as the newest; return its number."""
        with self._cond:
            number = 1 if self._current is None else self._current.number + 1
            if self._current is not None and self._current.number > self._taken:
                self.replaced += 1
            self._current = Slotted(item, number, put_ns)
            self._cond.notify_all()
            return number

    def wait_newer(self, after: int, timeout: float | None) -> Slotted[T] | None:
        """The newest item numbered above ``after``; ``None`` on timeout or close."""
        with self._cond:
            ready = self._cond.wait_for(lambda: self._closed or self._newer(after), timeout)
            if not ready or self._closed or self._current is None:
                return None
            self._taken = max(self._taken, self._current.number)
            return self._current

    def _newer(self, after: int) -> bool:
        return self._current is not None and self._current.number > after

    def peek(self) -> Slotted[T] | None:
        """The newest item without waiting (``None`` if nothing was put yet)."""
        with self._cond:
            return self._current

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
