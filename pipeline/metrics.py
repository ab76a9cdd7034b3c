"""Run metrics, computed from the `Frame` envelope.

The runtime feeds every frame's stage timings and its end-to-end latency
(capture to sink) into a `Metrics`; benchmarks, the JSON report and the live
one-line status all read the same counters. Drops are the exception: each
edge and the flow limiter count their own, and `Metrics` reads those
counters (registered with `Metrics.count_drops_of`) instead of keeping a
copy that could disagree. Frames in flight are pushed by the flow limiter
(its ``on_change``) into an `InFlightGauge`, which integrates them over time.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.frame import Frame
from pipeline.legs import LegLog


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": sum(values) / len(values) if values else math.nan,
        "count": float(len(values)),
    }


INPUT_STALL_S = 1.0
"""Silence of the source, in seconds, after which the status line flags it."""


STALL_MS = 100.0
"""A gap between frames over this is a stall: three frames at 30 fps, the
hitch a person sees (the page counts the same, ``static/stalls.js``)."""


@dataclass(slots=True)
class GapCounter:
    """Gaps over ``threshold_ms`` between successive frames at one point of a path.

    Counting the same gaps where frames arrive, leave and are displayed tells
    where a stall began. Only ``note`` changes it; readers take `snapshot`.
    """

    threshold_ms: float = STALL_MS
    count: int = 0
    total_ms: float = 0.0
    _last_ns: int | None = None

    def note(self, now_ns: int) -> None:
        """One frame passed at ``now_ns`` (a monotonic clock)."""
        if self._last_ns is not None and now_ns > self._last_ns:
            gap_ms = (now_ns - self._last_ns) / 1e6
            if gap_ms > self.threshold_ms:
                self.count += 1
                self.total_ms += gap_ms
        if self._last_ns is None or now_ns > self._last_ns:
            self._last_ns = now_ns

    def snapshot(self) -> dict[str, float]:
        """``{"count", "total_ms"}`` so far, JSON-ready."""
        return {"count": self.count, "total_ms": round(self.total_ms, 1)}


class DropCounter(Protocol):
    """The owner of a drop count: an edge or the flow limiter."""

    @property
    def drops(self) -> int: ...


@dataclass
class InFlightGauge:
    """Frames in flight and the head's limit over a run, as the runtime saw them.

    ``record`` is called after every change (a token taken or given back, the
    limit moved); the mean is weighted by time, so by Little's law it equals
    throughput x latency of the frames in the graph. ``limits`` holds the
    limit in force at each delivery, so its median is the limit a typical
    frame ran under.
    """

    max_samples: int = 200_000
    limits: list[int] = field(default_factory=list)
    in_flight: int = 0
    limit: int | None = None
    _area: float = 0.0  # frames x ns since the first record
    _first_ns: int | None = None
    _last_ns: int | None = None

    def record(self, now_ns: int, in_flight: int, limit: int) -> None:
        if self._last_ns is not None:
            self._area += self.in_flight * (now_ns - self._last_ns)
        if self._first_ns is None:
            self._first_ns = now_ns
        self._last_ns = now_ns
        self.in_flight, self.limit = in_flight, limit

    def record_delivery(self) -> None:
        if self.limit is not None and len(self.limits) < self.max_samples:
            self.limits.append(self.limit)

    def mean(self) -> float:
        """Time-weighted mean of frames in flight; NaN before any time passed."""
        if self._first_ns is None or self._last_ns is None or self._last_ns <= self._first_ns:
            return math.nan
        return self._area / (self._last_ns - self._first_ns)

    def limit_share(self, last: int | None = None) -> dict[int, float]:
        """The share of deliveries made under each limit from 1 to the highest
        of the run, over the last ``last`` deliveries (all when ``None``):
        which limit a run settled on, and how long it held others. Every level
        has its entry, so runs line up key by key."""
        limits = self.limits if last is None else self.limits[max(len(self.limits) - last, 0):]
        counts = Counter(limits)
        levels = range(1, max(self.limits, default=0) + 1)
        return {level: counts[level] / len(limits) for level in levels} if limits else {}

    def summary(self) -> dict[str, float | int | None]:
        return {
            "in_flight_mean": self.mean(),
            "in_flight_limit_p50": percentile(self.limits, 50),
            "in_flight_limit_last": self.limit,
        }


@dataclass
class StageCounters:
    durations_ms: list[float] = field(default_factory=list)
    processed: int = 0
    filtered: int = 0  # the stage returned None on purpose
    errors: int = 0


@dataclass
class Metrics:
    """Counters of one run. All times are monotonic nanoseconds.

    Attributes:
        frames_in: frames read from the source.
        frames_out: frames the last stage returned (delivered).
        frames_rejected: frames read whose picture was not ``(H, W, 3)`` uint8;
            dropped at the head, before any stage (counted in ``frames_in``).
        drops: per edge name (``"head"`` is the flow limiter), frames dropped,
            read from the registered owners (empty before a run registers them).
        latencies: ``(delivery_ns, end_to_end_ms)`` for every delivered frame:
            capture to the moment the sink returned it (the runtime's
            delivery time).
        count_lags_ms: for each entry of ``latencies``, how long after its
            delivery the event loop counted the frame (a wake-up, off the
            frame's path: the sink already has it). Latency plus this lag is
            latency as the runtime stamped it before it took the sink's end.
        in_flight: frames in flight and the head's limit over time.
        legs: where the last delivered frames spent their time (`pipeline.legs`).
    """

    max_samples: int = 200_000
    frames_in: int = 0
    frames_out: int = 0
    frames_rejected: int = 0
    stages: dict[str, StageCounters] = field(default_factory=lambda: defaultdict(StageCounters))
    latencies: list[tuple[int, float]] = field(default_factory=list)
    count_lags_ms: list[float] = field(default_factory=list)
    first_in_ns: int | None = None
    last_in_ns: int | None = None
    first_out_ns: int | None = None
    last_out_ns: int | None = None
    in_flight: InFlightGauge = field(default_factory=InFlightGauge)
    legs: LegLog = field(default_factory=LegLog)
    _drop_counters: dict[str, DropCounter] = field(default_factory=dict, init=False, repr=False)

    def count_drops_of(self, name: str, counter: DropCounter) -> None:
        """Report ``counter``'s drops under ``name``; the counter stays their only owner."""
        self._drop_counters[name] = counter

    @property
    def drops(self) -> dict[str, int]:
        """Frames dropped so far, per registered name, in registration order."""
        return {name: counter.drops for name, counter in self._drop_counters.items()}

    def record_in(self, now_ns: int) -> None:
        self.frames_in += 1
        if self.first_in_ns is None:
            self.first_in_ns = now_ns
        self.last_in_ns = now_ns

    def record_stage(self, name: str, start_ns: int, end_ns: int) -> None:
        counters = self.stages[name]
        counters.processed += 1
        if len(counters.durations_ms) < self.max_samples:
            counters.durations_ms.append((end_ns - start_ns) / 1e6)

    def record_out(self, frame: Frame, now_ns: int, counted_ns: int | None = None) -> None:
        """Count ``frame`` delivered at ``now_ns``; ``counted_ns``: when the loop
        heard of it (``count_lags_ms``; ``None``: then)."""
        self.frames_out += 1
        if self.first_out_ns is None:
            self.first_out_ns = now_ns
        self.last_out_ns = now_ns
        if len(self.latencies) < self.max_samples:
            self.latencies.append((now_ns, (now_ns - frame.capture_ns) / 1e6))
            lag = 0 if counted_ns is None else counted_ns - now_ns
            self.count_lags_ms.append(lag / 1e6)
        self.in_flight.record_delivery()
        self.legs.record(frame, now_ns)

    def in_flight_summary(self) -> dict[str, float | int | None]:
        """``in_flight_mean`` (time-weighted), ``in_flight_limit_p50`` (over
        deliveries) and ``in_flight_limit_last``; NaN/None before a run."""
        return self.in_flight.summary()

    @property
    def frames_dropped(self) -> int:
        return sum(self.drops.values())

    @property
    def frames_failed(self) -> int:
        return sum(c.errors for c in self.stages.values())

    @property
    def frames_filtered(self) -> int:
        return sum(c.filtered for c in self.stages.values())

    def fps_in(self) -> float:
        return _rate(self.frames_in, self.first_in_ns, self.last_in_ns)

    def fps_out(self) -> float:
        return _rate(self.frames_out, self.first_out_ns, self.last_out_ns)

    def _stall_note(self, now_ns: int | None) -> list[str]:
        """``["NO INPUT for N s"]`` when the source is silent for over `INPUT_STALL_S`."""
        if now_ns is None or self.last_in_ns is None:
            return []
        silent = (now_ns - self.last_in_ns) / 1e9
        return [f"NO INPUT for {silent:.1f} s"] if silent > INPUT_STALL_S else []

    def latency_ms(self) -> list[float]:
        return [ms for _, ms in self.latencies]

    def latency_window(self, start_frac: float, end_frac: float) -> list[float]:
        """Latencies of frames delivered in a fraction of the run's output span."""
        if not self.latencies:
            return []
        t0, t1 = self.latencies[0][0], self.latencies[-1][0]
        lo, hi = t0 + (t1 - t0) * start_frac, t0 + (t1 - t0) * end_frac
        return [ms for t, ms in self.latencies if lo <= t <= hi]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary of the run."""
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
            "frames_failed": self.frames_failed,
            "frames_filtered": self.frames_filtered,
            "drops": dict(self.drops),
            "fps_in": self.fps_in(),
            "fps_out": self.fps_out(),
            "latency_ms": summarize(self.latency_ms()),
            **self.in_flight_summary(),
            "legs_ms": self.legs.means(),
            "stages": {
                name: {**summarize(c.durations_ms), "errors": c.errors, "filtered": c.filtered}
                for name, c in self.stages.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(finite_json(self.to_dict()), indent=2)

    def status_line(self, window: int = 60, now_ns: int | None = None) -> str:
        """One line for a terminal: rates, recent latency, drops, per-stage p50.

        Given ``now_ns``, a source silent for over `INPUT_STALL_S` is flagged
        first ("NO INPUT for 3.2 s": a camera unplugged, a peer stalled).
        """
        recent = [ms for _, ms in self.latencies[-window:]]
        parts = [*self._stall_note(now_ns),
            f"in {self.fps_in():5.1f} fps",
            f"out {self.fps_out():5.1f} fps",
            f"e2e p50 {percentile(recent, 50):6.1f} ms p95 {percentile(recent, 95):6.1f} ms",
            f"dropped {self.frames_dropped}",
        ]
        if self.frames_failed:
            parts.append(f"failed {self.frames_failed}")
        stage_p50 = " ".join(
            f"{name} {percentile(c.durations_ms[-window:], 50):.1f}"
            for name, c in self.stages.items()
        )
        return " | ".join([*parts, stage_p50])


def _rate(count: int, first_ns: int | None, last_ns: int | None) -> float:
    if first_ns is None or last_ns is None or count < 2 or last_ns <= first_ns:
        return 0.0
    return (count - 1) / ((last_ns - first_ns) / 1e9)


def finite_json(obj: Any) -> Any:
    """Replace NaN/inf by None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite_json(v) for v in obj]
    return obj
