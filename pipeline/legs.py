"""Where delivered frames spent their time, leg by leg, on the runtime's clock.

A frame's latency (capture to delivery) splits into legs that add up to it
exactly:

* when the source timed its own work on the picture (a network track's
  colour conversion: `pipeline.frame.Frame.source_work`), ``wait <source>``
  from capture to that work's start and ``<source>`` for the work itself;
* ``head``: capture (or the source's work) to admission (the source's
  hand-off to the event loop, waiting for a token);
* for each stage, ``wait <stage>``: from the end of the leg before to the
  stage's start (hand-offs between threads, waiting in the edge for a busy
  stage), then ``<stage>``: the stage's own time;
* ``out``: the last stage's end to delivery. The runtime delivers a frame
  when the sink returns it, so there this leg is 0; how much later the event
  loop counted it is `pipeline.metrics.Metrics.count_lags_ms`.

So the mean of each leg over frames adds up to the mean latency, and a table
of them shows where the time goes. A frame's *service* is the sum of its own
stage legs and the source's work (no waits, no head, no out): the time it
would take alone. The
median of latency over the median of service is how long frames take
against how long they need. The sum of each stage's own median is no
stand-in for it: where stage times are skewed and a frame is slow in one
stage but not the next (it waited for a core there), the median frame's
service is longer than that sum, and a ratio against the sum counts the
spread as waiting. `LegLog` keeps the legs of the last frames
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
    work = frame.source_work
    if work is not None:
        names += [f"wait {work.stage}", work.stage]
        values += [(work.start_ns - previous) / 1e6, (work.end_ns - work.start_ns) / 1e6]
        previous = work.end_ns
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
        rows = self._last(last)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for names, values in rows:
            for name, value in zip(names, values, strict=True):
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
        return {name: sums[name] / counts[name] for name in sums}

    def services_ms(self, last: int | None = None) -> list[float]:
        """Each of the last ``last`` frames' service (module docstring), oldest first."""
        return [service_ms(row) for row in self._last(last)]

    def _last(self, last: int | None) -> list[Legs]:
        rows = list(self._rows)
        return rows if last is None else rows[max(len(rows) - last, 0):]


def service_ms(legs: Legs) -> float:
    """The sum of a frame's stage legs: its latency without head, waits and out."""
    names, values = legs
    return sum(value for name, value in zip(names, values, strict=True)
               if name not in ("head", "out") and not name.startswith("wait "))
