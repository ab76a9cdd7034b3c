"""How many avatar sessions one machine holds, with and without cross-session batching.

`run_sessions_bench` runs N sessions at once, each built exactly as
``vicocam serve`` builds a peer's pipeline (`open_avatar_service`: one model,
shared avatars, the session factory; the live runtime with the session's
defaults, the adaptive head limit among them unless
``--no-adaptive-in-flight``), minus the browser and the codec: each session's
camera replays a clip of the synthetic held-out person, rendered once into
memory at 640 x 480 and paced at 30 fps, so the sources cost nothing.
Sessions start at spread phases of the frame period, as independent peers
would.

For N = 1, 2, 3, ... both modes run in turn (batched: one `EngineBatcher`
per engine; unbatched: every session calls the engines itself) until each
has fallen behind: a mode holds at N when every session delivers at least
`FPS_GOAL` frames per second with end-to-end p95 at most `P95_GOAL_MS`.
Figures per N and mode: per-session output fps (min, mean), latency p50/p95
(over all sessions' frames), drops, batch size p50 and the process's CPU
time per delivered frame (what batching saves, less noisy than the rates on
a shared machine); and the largest N each mode holds
(``max_sessions_batched``, ``max_sessions_unbatched``), their ratio, the
first N each mode missed with the figures there (``first_miss_batched``,
``first_miss_unbatched``: whether it missed by a fraction of a frame per
second or by far), and what
the batcher costs a lone session: its p50 batched minus unbatched, and,
measured directly, a lone member's engine call minus the plain call; and
what a batch costs on this backend (ms per frame at batch 1, 2 and 4). With a
JSON path, a chart of fps and p95 against N is written beside it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from benchmarks.chart import Series, line_chart
from benchmarks.live import FPS, FRAME_SIZE, WARMUP_S, call_ms, first_frames, steady_latencies
from benchmarks.registry import MAX_SESSIONS
from pipeline.control import SettingsBox
from pipeline.frame import Image
from pipeline.metrics import Metrics, percentile
from pipeline.runtime import Pipeline, RunMode, RuntimeConfig
from pipeline.stage import SourceFrame, SourceInfo
from stages.io import NullSink
from stages.reenact.person import PersonConfig, PersonSource
from trt_engines.batching import BatchConfig, EngineBatcher, default_wait_s
from trt_engines.bundle import ModelBundle, ModelSpec, open_bundle
from trt_engines.engine import Engine

FPS_GOAL = 29.0
P95_GOAL_MS = 100.0
CLIP_FRAMES = 90
MODES = ("batched", "unbatched")


@dataclass(frozen=True, slots=True)
class SessionsBenchConfig:
    """Knobs of `run_sessions_bench`.

    Attributes:
        seconds: measured time per condition (after a warm-up).
        max_sessions: the largest N tried.
        model: the model every session runs (default: the bundled one).
        batch: how the batched mode batches (its ``max_batch`` is set to N).
        past_limit: conditions a mode still runs after it first falls behind
            (1 shows that the limit is not a fluke of one run).
        adaptive_in_flight: each session's head limit follows what pays (the
            session default, `pipeline.in_flight`); ``False``: the fixed limit.
    """

    seconds: float = 8.0
    max_sessions: int = MAX_SESSIONS
    model: ModelSpec = field(default_factory=ModelSpec)
    batch: BatchConfig = field(default_factory=BatchConfig)
    past_limit: int = 1
    adaptive_in_flight: bool = True


class ReplayClip:
    """Frames already in memory, replayed in a loop and paced by the runtime."""

    name = "replay"

    def __init__(self, frames: Sequence[Image], fps: int = FPS) -> None:
        if not frames:
            raise ValueError("a replayed clip needs at least one frame")
        self.frames = frames
        self.rate = Fraction(fps)
        self._index = 0

    def open(self) -> SourceInfo:
        h, w = self.frames[0].shape[:2]
        self._index = 0
        return SourceInfo(w, h, self.rate, self_paced=False)

    def read(self) -> SourceFrame | None:
        picture = self.frames[self._index % len(self.frames)].copy()
        frame = SourceFrame(picture, pts=self._index, time_base=1 / self.rate)
        self._index += 1
        return frame

    def close(self) -> None:
        self._index = 0


def render_clip(frames: int = CLIP_FRAMES) -> list[Image]:
    """The synthetic held-out person at 640 x 480, rendered once."""
    width, height = FRAME_SIZE
    return first_frames(PersonSource(PersonConfig(width=width, height=height, fps=FPS)), frames)


def run_sessions_bench(config: SessionsBenchConfig | None = None,
                       json_path: Path | None = None) -> dict[str, Any]:
    """N sessions at once for N = 1, 2, ...; both modes; flat figures (see the module)."""
    config = config or SessionsBenchConfig()
    clip = render_clip()
    bundle = open_bundle(config.model)
    try:
        overhead = batcher_overhead_ms(bundle)
        scaling = engine_ms_by_batch(bundle)
        measure(replace(config, seconds=WARMUP_S), bundle, clip, 1, "unbatched")  # not kept
        rows = _sweep(config, bundle, clip)
    finally:
        bundle.close()
    figures = _summary(rows, bundle, config) | {"batcher_ms_per_call_alone": overhead,
                                                "engine_ms_per_frame_by_batch": scaling}
    if json_path is not None:
        figures["chart"] = str(plot_sessions(rows, json_path.with_suffix(".png")).name)
    return figures


def _sweep(config: SessionsBenchConfig, bundle: ModelBundle,
           clip: Sequence[Image]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    misses = dict.fromkeys(MODES, 0)
    for n in range(1, config.max_sessions + 1):
        for mode in MODES if n % 2 else MODES[::-1]:  # neither mode always goes first
            if misses[mode] > config.past_limit:
                continue
            row = measure(config, bundle, clip, n, mode)
            print(_progress(row), flush=True)
            rows.append(row)
            misses[mode] += 0 if row["holds"] else 1
        if all(m > config.past_limit for m in misses.values()):
            break
    return rows


def batcher_overhead_ms(bundle: ModelBundle, calls: int = 200) -> dict[str, float]:
    """Per engine: a lone member's call minus the plain engine call, ms (median of 5 rounds).

    What batch size 1 adds to today's path, measured directly: the end-to-end
    p50 of a lone session moves by more than this between two runs.
    """
    added = {}
    for role, engine in (("motion", bundle.motion), ("generate", bundle.generate)):
        feeds = _examples(engine, 1)
        member = EngineBatcher(engine, BatchConfig()).join()
        rounds = [call_ms(member.run, feeds, calls) - call_ms(engine.run, feeds, calls)
                  for _ in range(5)]
        member.close()
        added[role] = sorted(rounds)[2]
    return added


def engine_ms_by_batch(bundle: ModelBundle, batches: Sequence[int] = (1, 2, 4),
                      calls: int = 60) -> dict[str, dict[int, float]]:
    """Per engine and batch size: ms per frame (one call's time over the batch)."""
    return {role: {n: call_ms(engine.run, _examples(engine, n), calls) / n for n in batches}
            for role, engine in (("motion", bundle.motion), ("generate", bundle.generate))}


def _examples(engine: Engine, batch: int) -> dict[str, Any]:
    return {spec.name: spec.example(batch) for spec in engine.inputs}


def _progress(row: dict[str, Any]) -> str:
    return (f"sessions {row['sessions']} {row['mode']:<9} fps min {row['fps_min']:.1f} "
            f"p95 {row['latency_p95_ms']:.0f} ms batch p50 {row['batch_size_p50']}"
            f"{'' if row['holds'] else '  (falls behind)'}")


def measure(config: SessionsBenchConfig, bundle: ModelBundle, clip: Sequence[Image],
            sessions: int, mode: str) -> dict[str, Any]:
    """``sessions`` live sessions at once in one mode; that condition's figures."""
    from pipeline.app.serving import ServeConfig, open_avatar_service

    batching = replace(config.batch, max_batch=sessions) if mode == "batched" else None
    service = open_avatar_service(ServeConfig(model=config.model, batching=batching), bundle)
    runtime = RuntimeConfig(mode=RunMode.LIVE, duration_s=config.seconds + WARMUP_S,
                            adaptive_in_flight=config.adaptive_in_flight)
    pipelines = [_session(service, clip, runtime) for _ in range(sessions)]
    cpu = time.process_time()
    metrics = asyncio.run(_run_all(pipelines))
    cpu = time.process_time() - cpu
    batchers = service.factory.batchers
    sizes = batchers[1].batch_sizes() if batchers else [1]
    row = _condition(metrics, sessions, mode, config.seconds, sizes)
    row["cpu_ms_per_frame"] = 1e3 * cpu / max(1, sum(m.frames_out for m in metrics))
    return row


def _session(service: Any, clip: Sequence[Image], runtime: RuntimeConfig) -> Pipeline:
    """One peer's pipeline as `stages.webrtc.peer_session.Session` builds it."""
    stages = [*service.factory(SettingsBox(service.settings)), NullSink()]
    return Pipeline(ReplayClip(clip), stages, runtime)


async def _run_all(pipelines: Sequence[Pipeline]) -> list[Metrics]:
    phases = random.Random(len(pipelines))  # peers start at unrelated points of a frame

    async def one(pipeline: Pipeline) -> Metrics:
        await asyncio.sleep(phases.uniform(0, 1 / FPS))
        return (await pipeline.run()).metrics

    return list(await asyncio.gather(*(one(p) for p in pipelines)))


def _condition(metrics: Sequence[Metrics], sessions: int, mode: str, seconds: float,
               sizes: Sequence[int]) -> dict[str, Any]:
    steady = [steady_latencies(m, seconds) for m in metrics]
    fps = [rate for rate, _ in steady]
    latency = [ms for _, values in steady for ms in values]
    p95 = percentile(latency, 95)
    return {
        "sessions": sessions,
        "mode": mode,
        "fps_min": min(fps),
        "fps_mean": sum(fps) / len(fps),
        "latency_p50_ms": percentile(latency, 50),
        "latency_p95_ms": p95,
        "frames_dropped": sum(m.frames_dropped for m in metrics),
        "frames_failed": sum(m.frames_failed for m in metrics),
        "batch_size_p50": percentile(list(sizes), 50),
        "holds": min(fps) >= FPS_GOAL and p95 <= P95_GOAL_MS,
    }


def _summary(rows: list[dict[str, Any]], bundle: ModelBundle,
             config: SessionsBenchConfig) -> dict[str, Any]:
    best = {mode: _largest_held(rows, mode) for mode in MODES}
    ratio = best["batched"] / best["unbatched"] if best["unbatched"] else None
    alone = {r["mode"]: r["latency_p50_ms"] for r in rows if r["sessions"] == 1}
    return {
        "model": bundle.label,
        "backend": str(bundle.motion.backend),
        "device": str(bundle.device),
        "camera": f"synthetic held-out person, {FRAME_SIZE[0]}x{FRAME_SIZE[1]} at {FPS} fps",
        "seconds_per_condition": config.seconds,
        "adaptive_in_flight": config.adaptive_in_flight,
        "batch_max_wait_ms": _wait_ms(config.batch, bundle),
        "goal": {"fps_min": FPS_GOAL, "latency_p95_ms": P95_GOAL_MS},
        "max_sessions_batched": best["batched"],
        "max_sessions_unbatched": best["unbatched"],
        "sessions_ratio": ratio,
        "one_session_p50_batched_minus_unbatched_ms": alone["batched"] - alone["unbatched"],
        **{f"first_miss_{mode}": _first_miss(rows, mode) for mode in MODES},
        "conditions": rows,
    }


def _wait_ms(batch: BatchConfig, bundle: ModelBundle) -> float:
    wait = batch.max_wait_s
    return 1e3 * (default_wait_s(bundle.generate) if wait is None else wait)


def _largest_held(rows: list[dict[str, Any]], mode: str) -> int:
    """The largest N at which ``mode`` held, counting only up to its first miss."""
    held = 0
    for row in sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["sessions"]):
        if not row["holds"]:
            break
        held = row["sessions"]
    return held


def _first_miss(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The first N at which ``mode`` missed the goal, and by how much: the slowest
    and the mean session's fps and the latency there, and which goals it missed
    (``None`` when it held at every N tried). The largest N held hinges on the
    slowest session; this says whether the next one missed by a fraction of a
    frame per second or by far."""
    for row in sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["sessions"]):
        if not row["holds"]:
            missed = [goal for goal, short in (("fps_min", row["fps_min"] < FPS_GOAL),
                                               ("latency_p95_ms",
                                                row["latency_p95_ms"] > P95_GOAL_MS)) if short]
            keys = ("sessions", "fps_min", "fps_mean", "latency_p50_ms", "latency_p95_ms")
            return {key: row[key] for key in keys} | {"missed": missed}
    return None


def plot_sessions(rows: list[dict[str, Any]], path: Path) -> Path:
    """Per-session fps (min) and p95 latency against sessions, both modes, as a PNG."""
    def series(mode: str, key: str) -> Series:
        points = [(r["sessions"], r[key]) for r in rows if r["mode"] == mode]
        return Series(mode, points)

    return line_chart(
        path,
        panels=[
            ("slowest session's fps", [series(m, "fps_min") for m in MODES], FPS_GOAL),
            ("end-to-end p95 (ms)", [series(m, "latency_p95_ms") for m in MODES], P95_GOAL_MS),
        ],
        x_label="sessions at once",
    )
