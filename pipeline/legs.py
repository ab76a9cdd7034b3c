"""Where delivered frames spent their time, leg by leg, on the runtime's clock.

A frame's latency (capture to delivery) splits into legs that add up to it
exactly:

* ``head``: capture to admission (the source's hand-off to the event loop);
* for each stage, ``wait <stage>``: from the end of the leg before to the
  stage's start (hand-offs between threads, waiting in the edge for a busy
  stage), then ``<stage>``: the stage's own time;
* ``out``: the last stage's end to delivery.

So the mean of each leg over frames adds up to the mean latency, and a table
of them shows where the time goes. `LegLog` keeps the legs of the last frames
delivered (a bounded window, so a session that runs for hours holds a fixed
amount).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pipeline.frame import Frame

Legs = tuple[tuple[str, ...], tuple[float, ...]]
"""Leg names and their milliseconds, in the order the frame went through them."""


def frame_legs(frame: Frame, delivered_ns: int) -> Legs:
    """The legs of ``frame`` delivered at ``delivered_ns`` (module docstring)."""
    names: list[str] = []
    values: list[float] = []
    previous = frame.capture_ns
    if frame.admitted_ns is not None:
        names.append("head")
        values.append((frame.admitted_ns - previous) / 1e6)
        previous = frame.admitted_ns
    for timing in frame.trace:
        names += [f"wait {timing.stage}", timing.stage]
        values += [(timing.start_ns - previous) / 1e6, (timing.end_ns - timing.start_ns) / 1e6]
        previous = timing.end_ns
    names.append("out")
    values.append((delivered_ns - previous) / 1e6)
    return tuple(names), tuple(values)


@dataclass
class LegLog:
    """The legs of the last ``keep`` delivered frames."""

    keep: int = 2048
    _rows: deque[Legs] = field(init=False, repr=False)
    _names: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError(f"keep must be >= 1, got {self.keep}")
        self._rows = deque(maxlen=self.keep)

    def __len__(self) -> int:
        return len(self._rows)

    def record(self, frame: Frame, delivered_ns: int) -> None:
        names, values = frame_legs(frame, delivered_ns)
        if names == self._names:
            names = self._names  # one tuple of names shared by every row of a chain
        self._names = names
        self._rows.append((names, values))

    def means(self, last: int | None = None) -> dict[str, float]:
        """Mean milliseconds per leg over the last ``last`` frames (all kept: ``None``),
        in the order of the legs; a leg some frames lack is averaged over those that have it."""
        rows = list(self._rows)
        if last is not None:
            rows = rows[max(len(rows) - last, 0):]
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for names, values in rows:
            for name, value in zip(names, values, strict=True):
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
        return {name: sums[name] / counts[name] for name in sums}
