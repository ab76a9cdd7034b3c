"""A human-readable summary of a run, printed at the end of ``vicocam run``."""

from __future__ import annotations

import math

from pipeline.metrics import percentile
from pipeline.runtime import RunReport


def format_summary(report: RunReport, *, sink: str | None = None) -> str:
    m = report.metrics
    latency = m.latency_ms()
    p50, p95, p99 = (percentile(latency, q) for q in (50, 95, 99))
    lines = [
        f"vicocam: {report.reason} after {m.frames_in} frames in, {m.frames_out} out"
        + (f" -> {sink}" if sink else ""),
        f"  rate        in {m.fps_in():.1f} fps, out {m.fps_out():.1f} fps",
        f"  end-to-end  p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms (capture to sink)",
        f"  dropped     {m.frames_dropped} ({_drops(m.drops)}), failed {m.frames_failed}",
        f"  in flight   {_in_flight(m.in_flight_summary())}",
    ]
    for name, counters in m.stages.items():
        lines.append(
            f"  stage {name:<14} p50 {percentile(counters.durations_ms, 50):.2f} ms, "
            f"p95 {percentile(counters.durations_ms, 95):.2f} ms, "
            f"errors {counters.errors}"
        )
    return "\n".join(lines)


def _drops(drops: dict[str, int]) -> str:
    nonzero = {k: v for k, v in drops.items() if v}
    return ", ".join(f"{k} {v}" for k, v in nonzero.items()) or "none"


def _in_flight(summary: dict[str, float | int | None]) -> str:
    mean, p50, last = (summary[k] for k in
                       ("in_flight_mean", "in_flight_limit_p50", "in_flight_limit_last"))
    if mean is None or last is None or math.isnan(mean):
        return "no frames"
    return f"mean {mean:.2f}, limit p50 {p50:g}, last {last}"
