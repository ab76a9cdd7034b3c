"""How long a thread that wants the GIL waits for it: CPython's switch interval.

A thread holding the GIL keeps it until it blocks, enters native code that
releases it, or another thread has waited the switch interval (5 ms unless
set) and asks for it. Every hand-off between stage threads wakes the event
loop, which needs the GIL while a stage thread may be running Python between
its native calls; beside programs that keep the cores busy, the holder can
be preempted while it holds it. ``vicocam bench --gil-switch-ms`` runs a
benchmark under another interval to measure what that costs: beside 6 CPU
burners 0.5 ms moved nothing beyond the runs' spread ("The adaptive limit:
frame rate first" in benchmarks/RESULTS.md), so the commands keep CPython's.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def gil_switch_interval(seconds: float | None) -> Iterator[float]:
    """Run the block with the GIL's switch interval at ``seconds`` (``None``: as it is);
    yields the interval in force. The previous interval comes back on leaving."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"the switch interval must be > 0 s, got {seconds}")
    previous = sys.getswitchinterval()
    if seconds is not None:
        sys.setswitchinterval(seconds)
    try:
        yield sys.getswitchinterval()
    finally:
        sys.setswitchinterval(previous)
