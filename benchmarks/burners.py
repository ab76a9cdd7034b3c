"""CPU burners: processes that spin on a core, the busy neighbours of a benchmark.

A laptop's cores are shared with the camera, the call app and whatever else
runs; ``vicocam bench contention`` and the WebRTC benchmarks' ``--burners``
start such neighbours for the measurement and stop them after. They are
spawned (not forked, so they hold none of the benchmark's threads or
memory) with the affinity of the process that starts them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator


def _burn() -> None:  # pragma: no cover - runs in a child process until terminated
    while True:
        pass


@contextlib.contextmanager
def burners(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU for the duration of the block."""
    if count < 0:
        raise ValueError(f"burners must be >= 0, got {count}")
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_burn, daemon=True, name=f"burner-{i}") for i in range(count)]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
