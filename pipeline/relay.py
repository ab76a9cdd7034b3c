"""A live hand-off from one worker thread straight to the next, without the loop.

Between two blocking segments (`pipeline.segments`) a frame used to go from
the first worker to the event loop (one wake-up) and from the loop to the next
worker (another). Beside busy programs each wake-up waits for a core: in
front of the second segment a frame waited 3.6-8.5 ms, mostly not behind the
frame before it (`vicocam bench contention`, ``handoffs``). A `Relay` sits in
front of a blocking segment fed by another: the worker that finishes a frame
puts it here, and the segment's own worker takes it, so the loop is no longer
between them; the loop hears of each frame afterwards, off the frame's path,
to count it. The loop's own admission puts the head's frames into the first
worker segment's relay the same way (`offer`: the token is taken under the
relay's lock, so whether the new frame replaces a waiting one cannot change
in between), so the loop no longer waits for that worker either, and a
worker that hands a frame on leaves its steps on the frame for the loop to
count with the frame's last notice: one loop wake-up a frame, after the sink,
instead of one more while the next worker wakes.

Same policy as `pipeline.edges.LiveEdge`: capacity 1, a new frame replaces
the waiting one, every drop counted and reported through ``on_drop``. The
segment runs on its own single-thread executor (so a stage keeps its thread
for ``start``, ``process`` and ``stop``): a put that finds the segment idle
submits a run there; a run takes the next waiting frame itself before it
returns. A frame whose run raises is logged and the run goes on with the
frame waiting after it, so nothing is left behind out of order and no error
vanishes in the executor. After `close` nothing more runs, and what arrives
is dropped. Safe from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor

from pipeline.edges import EdgePolicy
from pipeline.frame import Frame

log = logging.getLogger(__name__)


class Relay:
    """Capacity-1, drop-oldest hand-off into a segment run on ``executor``.

    ``run`` processes one frame in the executor's thread (the segment and
    whatever follows it); ``on_drop`` is told of each frame replaced or
    refused after `close` (possibly from a worker thread).
    """

    policy = EdgePolicy.LIVE

    def __init__(self, name: str, executor: Executor, run: Callable[[Frame], None],
                 on_drop: Callable[[Frame], None]) -> None:
        self.name = name
        self._executor = executor
        self._run = run
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._slot: Frame | None = None
        self._busy = False
        self._closed = False
        self._drops = 0

    @property
    def drops(self) -> int:
        """Frames replaced before the segment took them, or refused after `close`."""
        return self._drops

    def qsize(self) -> int:
        return 0 if self._slot is None else 1

    def put_nowait(self, frame: Frame) -> None:
        """Hand ``frame`` on: run it now if the segment is idle, else let it wait
        in place of the frame waiting before it."""
        self.offer(frame, None)

    def offer(self, frame: Frame, admit: Callable[[bool], bool] | None) -> bool:
        """`put_nowait` if ``admit`` (told whether ``frame`` would replace a
        waiting one) says yes; asked while no worker can take that frame, so
        the answer holds. Returns whether ``frame`` was handed on."""
        start, dropped = False, None
        with self._lock:
            if admit is not None and not admit(self._slot is not None):
                return False
            if self._closed:
                dropped = frame
            elif self._busy:
                dropped, self._slot = self._slot, frame
            else:
                start = self._busy = True
            if dropped is not None:
                self._drops += 1
        if start:
            self._executor.submit(self._work, frame)
        if dropped is not None:
            self._on_drop(dropped)
        return True

    def close(self) -> None:
        """Run nothing more; the waiting frame and later ones are dropped."""
        with self._lock:
            self._closed = True
            waiting, self._slot = self._slot, None
            if waiting is not None:
                self._drops += 1
        if waiting is not None:
            self._on_drop(waiting)

    def _work(self, first: Frame) -> None:
        """In the segment's thread: run frames until none waits."""
        frame: Frame | None = first
        while frame is not None:
            try:
                self._run(frame)
            except Exception:
                log.exception("%s: running frame %d failed; going on with the next",
                              self.name, frame.seq)
            with self._lock:
                frame = None if self._closed else self._slot
                self._slot = None
                self._busy = frame is not None
