"""The Python heap of a long-running process: collections that stop every thread.

CPython's cycle collector runs in whichever thread allocates when a counter
trips, holds the GIL while it walks, and so pauses every stage thread and
the event loop at once. A young collection walks few objects; a full one
walks every object the process holds, and a served process holds about
200,000 after its imports alone (modules, classes, functions), all alive
until it exits. Measured with a browser session (`vicocam bench webrtc-model
--thawed-heap`, "Latency where users are" in benchmarks/RESULTS.md), a full
collection came once in each session and paused the server for 136-162 ms;
on a server with several sessions each such pause stalls all of them, and
the server runs one more after a session leaves.

`frozen_heap` collects once (so no garbage is kept), then moves every
object alive into the permanent generation (``gc.freeze``), which
collections skip: later full collections walk only what was made after,
such as the sessions' own objects. The frozen objects are still freed by
reference counting; only a reference cycle among them would stay until the
process exits, and they were all alive when frozen. Enter it at a
long-running command's entry point once the heavy objects exist (the model
loaded, the server built), as `pipeline.memory.tune_allocator` is called.

`GcPauses` records how long each collection held the process (a
``gc.callbacks`` hook) for benchmarks that report the stalls a user sees.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

GENERATIONS = 3


@contextlib.contextmanager
def frozen_heap() -> Iterator[int]:
    """Collect, then freeze every object alive (see the module); yields how many are frozen.

    Leaving it unfreezes them, unless a frozen heap was already entered
    around it (the outer one's objects stay frozen until the outer leaves).
    """
    outermost = gc.get_freeze_count() == 0
    gc.collect()
    gc.freeze()
    try:
        yield gc.get_freeze_count()
    finally:
        if outermost:
            gc.unfreeze()


@dataclass(slots=True)
class GcPauses:
    """How long each collection held the process, by generation (ms), while `recording`."""

    clock_ns: Callable[[], int] = time.perf_counter_ns
    pauses_ms: list[list[float]] = field(default_factory=lambda: [[] for _ in range(GENERATIONS)])
    _start_ns: int | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        """The ``gc.callbacks`` hook: ``phase`` is ``"start"`` or ``"stop"``."""
        if phase == "start":
            self._start_ns = self.clock_ns()
        elif self._start_ns is not None:
            self.pauses_ms[info["generation"]].append((self.clock_ns() - self._start_ns) / 1e6)
            self._start_ns = None

    @contextlib.contextmanager
    def recording(self) -> Iterator[GcPauses]:
        """Hook into the collector for the ``with`` block."""
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)

    def figures(self) -> dict[str, Any]:
        """Per generation: collections, the longest and total pause (ms), JSON-ready."""
        return {f"gen{g}": {"collections": len(ms),
                            "max_ms": round(max(ms), 2) if ms else None,
                            "total_ms": round(sum(ms), 1)}
                for g, ms in enumerate(self.pauses_ms)}
