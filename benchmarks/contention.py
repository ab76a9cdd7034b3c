"""``vicocam bench contention``: the live avatar path beside CPU-hungry neighbours.

Question answered: when other programs take the cores (a browser, a call app,
a compile), does the head limiter keep latency near the service time of one
frame, and at what frame rate? On a laptop vicocam shares its cores with the
camera, the call and everything else.

For each number of burners (processes that spin on a core, started before
and stopped after each measurement) the avatar path runs live into a null
sink, once with the adaptive limiter and once with the fixed one, back to
back, driven as in ``vicocam bench live`` (the shared clip at 640x480@30, or
the synthetic person). Figures per burner count and limiter: output fps,
end-to-end latency p50/p95, the sum of the stages' p50s and the ratio of the
latency p50 to it (1.0: no frame waited between stages), the frames' own
service p50 (the sum of each frame's stage times, `pipeline.legs`) and the
latency p50 over it (beside burners stage times are skewed, and the sum of
the stages' medians falls short of the median frame's service: that ratio
counts the skew as waiting, this one does not), frames in flight, the share
of the measured frames delivered under each in-flight limit, the wait in
front of each worker segment split into queueing behind the frame before and
the rest, waking a thread (`benchmarks.handoffs`), drops;
and per burner count the adaptive limiter's latency and fps as
ratios of the fixed one's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from benchmarks.burners import burners
from benchmarks.handoffs import HandoffTap, handoff_figures
from benchmarks.live import (
    FRAME_SIZE,
    WARMUP_S,
    live_figures,
    live_run,
    open_bench_driver,
    steady_latencies,
)
from pipeline.app.avatar_run import AvatarRunConfig
from pipeline.metrics import Metrics, percentile
from stages.reenact.output_mode import OutputMode
from trt_engines.bundle import ModelBundle, ModelSpec, open_bundle

BURNERS = (0, 1, 2, 6)
LIMITERS = ("adaptive", "fixed")


def run_contention_bench(seconds: float = 12.0, counts: Sequence[int] = BURNERS,
                         driver: str | None = None,
                         stage_threads: int | None = None) -> dict[str, Any]:
    """Measure every burner count with both limiters (see the module docstring);
    ``stage_threads`` as in `pipeline.runtime.RuntimeConfig`."""
    bundle = open_bundle(ModelSpec())
    config = AvatarRunConfig(avatars=("person:1",), output=OutputMode.PASTE, sink="null",
                             output_size=FRAME_SIZE, stage_threads=stage_threads)
    try:
        rows = {f"burners_{n}": _condition(config, bundle, n, seconds, driver) for n in counts}
    finally:
        bundle.close()
    return {"model": bundle.label, "seconds_per_run": seconds, "stage_threads": stage_threads,
            "driver": open_bench_driver(driver)[1], **rows}


def _condition(config: AvatarRunConfig, bundle: ModelBundle, count: int, seconds: float,
               driver: str | None) -> dict[str, Any]:
    with burners(count):
        runs = {mode: _one(config, bundle, mode, seconds, driver) for mode in LIMITERS}
    adaptive, fixed = runs["adaptive"], runs["fixed"]
    return {**runs,
            "adaptive_fps_vs_fixed": adaptive["output_fps"] / fixed["output_fps"],
            "adaptive_p50_vs_fixed": adaptive["latency_p50_ms"] / fixed["latency_p50_ms"]}


def _one(config: AvatarRunConfig, bundle: ModelBundle, mode: str, seconds: float,
         driver: str | None) -> dict[str, Any]:
    run_config = replace(config, adaptive_in_flight=mode == "adaptive")
    source, _ = open_bench_driver(driver)
    tap = HandoffTap()
    pipeline = live_run(run_config, bundle, source, seconds + WARMUP_S, tap)
    metrics = pipeline.metrics
    figures = live_figures(metrics, float("inf"), seconds)
    measured = len(steady_latencies(metrics, seconds)[1])
    steady = list(tap.frames)[len(tap.frames) - measured:] if measured else []
    segments = [[stage.name for stage in segment.stages] for segment in pipeline.segments]
    return {key: figures[key] for key in ("output_fps", "latency_p50_ms", "latency_p95_ms",
                                          "latency_p50_counted_ms", "count_lag_p50_ms",
                                          "frames_dropped", "legs_ms")} \
        | _service(figures, metrics, seconds) | {"handoffs": handoff_figures(steady, segments)}


def _service(figures: dict[str, Any], metrics: Metrics, seconds: float) -> dict[str, Any]:
    stages = sum(v for k, v in figures.items() if k.startswith("stage_") and k.endswith("_p50_ms"))
    latency = figures["latency_p50_ms"]
    steady = len(steady_latencies(metrics, seconds)[1])
    service = percentile(metrics.legs.services_ms(last=steady), 50) if steady else None
    counted = figures["latency_p50_counted_ms"]
    return {"stages_p50_sum_ms": stages,
            "latency_p50_vs_stages": latency / stages if stages else None,
            "latency_p50_counted_vs_stages": counted / stages if stages else None,
            "service_p50_ms": service,
            "latency_p50_vs_service": latency / service if service else None,
            **metrics.in_flight_summary(),
            "in_flight_limit_share": metrics.in_flight.limit_share(last=steady)}
