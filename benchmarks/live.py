"""Does the live avatar path hold real time on this machine, and what does the runtime cost?

`run_live_bench` drives the avatar path exactly as ``vicocam run`` builds it
(face tracking, avatar, motion, generation, compositing; the default CPU
backend; the bundled model, or a randomly initialised configuration) with a
640 x 480 driver at 30 fps: the shared clip ``driving1.mp4`` when present
(letterboxed into the frame and replayed), else the synthetic held-out
person. Output goes to a null sink (the cost of a particular encoder is not
the question), in the paste mode a virtual camera shows.

Figures: the live run's output rate, end-to-end latency p50/p95 (after a
warm-up), per-stage p50s and drops; and a bare loop: the same stages called
one after another on the same frames in one thread, no runtime, no pacing.
``throughput_vs_bare_loop`` divides the live output rate by what the bare
loop could deliver *at the source's rate* (``min(bare_loop_fps, source
fps)``): the live path cannot output more frames than the driver gives, so
an uncapped bare loop would compare a paced run with an unpaced one.

`run_backend_bench` answers the other question, which CPU backend is faster
for a configuration: the two model engines alone, on each backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from benchmarks.common import shared_media_dir
from pipeline.app.avatar_run import AvatarRunConfig, build_avatar_run
from pipeline.frame import Frame, Image
from pipeline.heap import frozen_heap
from pipeline.metrics import Metrics, percentile
from pipeline.runtime import Pipeline
from pipeline.stage import Source, SourceFrame, SourceInfo, Stage
from stages.io import NullSink, VideoFileSource, VideoFileSourceConfig
from stages.reenact.output_mode import OutputMode
from stages.reenact.person import PersonConfig, PersonSource
from trt_engines.backends import BackendName
from trt_engines.bundle import (
    DEFAULT_RANDOM_CONFIG,
    ModelBundle,
    ModelSpec,
    bundled_checkpoint,
    open_bundle,
    open_model_engines,
)

FRAME_SIZE = (640, 480)
FPS = 30
WARMUP_S = 2.0
BARE_FRAMES = 90
SHARED_CLIP = "driving1.mp4"


class FramedClip:
    """A video file letterboxed into ``size`` and served at ``fps``, looping.

    The shared clips are 256 x 256 at 10-25 fps; a webcam gives 640 x 480 at
    30 fps, which is what the live figures are about. The first ``frames``
    pictures are decoded once when the source opens, so that on a busy
    machine the driver's own decoding does not hold back the input rate
    (a camera hands over finished pictures).
    """

    name = "framed_clip"

    def __init__(
        self, path: Path, size: tuple[int, int] = FRAME_SIZE, fps: int = FPS, frames: int = 300
    ) -> None:
        self.path = path
        self.size = size
        self.rate = Fraction(fps)
        self.frames = frames
        self._clip: list[Image] = []
        self._index = 0

    def open(self) -> SourceInfo:
        inner = VideoFileSource(VideoFileSourceConfig(self.path, frames=self.frames))
        inner.open()
        try:
            self._clip = [got.image for got in iter(inner.read, None)]
        finally:
            inner.close()
        if not self._clip:
            raise ValueError(f"{self.path} has no frames")
        self._index = 0
        return SourceInfo(self.size[0], self.size[1], self.rate, self_paced=False)

    def read(self) -> SourceFrame | None:
        if not self._clip:
            return None
        square = self._clip[self._index % len(self._clip)]
        frame = SourceFrame(self._frame(square), pts=self._index, time_base=1 / self.rate)
        self._index += 1
        return frame

    def close(self) -> None:
        self._clip = []

    def _frame(self, picture: Image) -> Image:
        w, h = self.size
        side = min(w, h)
        square = cv2.resize(picture, (side, side), interpolation=cv2.INTER_LINEAR)
        left, top = (w - side) // 2, (h - side) // 2
        framed = cv2.copyMakeBorder(
            square, top, h - side - top, left, w - side - left, cv2.BORDER_REPLICATE
        )
        return np.ascontiguousarray(framed, dtype=np.uint8)


def open_bench_driver(driver: str | None) -> tuple[Source, str]:
    """The driver and its description: a file, the shared clip, or the synthetic person."""
    if driver == "person":
        return PersonSource(PersonConfig()), "synthetic held-out person"
    path = Path(driver) if driver else shared_media_dir() / SHARED_CLIP
    if path.is_file():
        return FramedClip(path), f"{path.name} letterboxed to 640x480 at 30 fps"
    if driver:
        raise FileNotFoundError(f"driver clip {path} not found")
    return PersonSource(PersonConfig()), "synthetic held-out person"


@dataclass(frozen=True, slots=True)
class LiveBenchConfig:
    """Knobs of `run_live_bench` (defaults: what ``vicocam run`` uses)."""

    driver: str | None = None
    model: ModelSpec = field(default_factory=ModelSpec)
    output: OutputMode = OutputMode.PASTE
    bare_frames: int = BARE_FRAMES


def run_live_bench(
    seconds: float = 20.0, config: LiveBenchConfig | None = None, avatar: str = "person:1"
) -> dict[str, Any]:
    """The full live path for ``seconds`` plus a bare loop on the same frames; flat figures."""
    config = config or LiveBenchConfig()
    bundle = open_bundle(config.model)
    run_config = AvatarRunConfig(
        avatars=(avatar,), output=config.output, sink="null", output_size=FRAME_SIZE
    )
    try:
        source, described = open_bench_driver(config.driver)
        frames = first_frames(source, config.bare_frames)
        bare_fps = _bare_loop_fps(run_config, bundle, frames)
        source, _ = open_bench_driver(config.driver)
        metrics = live_metrics(run_config, bundle, source, seconds + WARMUP_S)
    finally:
        bundle.close()
    figures = live_figures(metrics, bare_fps, seconds)
    return {
        "driver": described,
        "model": bundle.label,
        "trained": bundle.trained,
        "output_mode": str(config.output),
        "seconds": seconds,
        **figures,
    }


def first_frames(source: Source, count: int) -> list[Image]:
    """The first ``count`` pictures of ``source`` (fewer if it ends), opened and closed here."""
    source.open()
    try:
        frames: list[Image] = []
        while len(frames) < count and (got := source.read()) is not None:
            frames.append(got.image)
        return frames
    finally:
        source.close()


def _bare_loop_fps(config: AvatarRunConfig, bundle: ModelBundle, frames: Sequence[Image]) -> float:
    """Frames per second of the same stages called in one thread, after a warm-up pass."""
    stages = build_avatar_run(config, bundle=bundle, sink=NullSink()).stages
    for stage in stages:
        stage.start()
    try:
        warm = max(1, len(frames) // 6)
        for seq, image in enumerate(frames[:warm]):
            _through(stages, seq, image)
        start = time.perf_counter()
        for seq, image in enumerate(frames[warm:], start=warm):
            _through(stages, seq, image)
        return (len(frames) - warm) / (time.perf_counter() - start)
    finally:
        for stage in stages:
            stage.stop()


def _through(stages: Sequence[Stage], seq: int, image: Image) -> None:
    # Capture times advance at the source rate, so the tracker smooths as it does live.
    frame: Frame | None = Frame(seq, round(seq * 1e9 / FPS) + 1, image.copy())
    for stage in stages:
        if frame is None:
            return
        frame = stage.process(frame)


def live_metrics(config: AvatarRunConfig, bundle: ModelBundle, source: Source,
                 seconds: float) -> Metrics:
    """The avatar path as ``vicocam run`` builds and runs it (in a frozen heap,
    `pipeline.heap`), live from ``source`` for ``seconds``."""
    return live_run(config, bundle, source, seconds, NullSink()).metrics


def live_run(config: AvatarRunConfig, bundle: ModelBundle, source: Source, seconds: float,
             sink: NullSink) -> Pipeline:
    """`live_metrics` into ``sink`` (a null sink, or one that records what it
    saw); returns the finished pipeline (its metrics and segments)."""
    run = build_avatar_run(config, bundle=bundle, sink=sink)
    runtime = replace(run.pipeline.config, duration_s=seconds, max_frames=None)
    pipeline = Pipeline(source, run.pipeline.stages, runtime)
    with frozen_heap():
        asyncio.run(pipeline.run())
    return pipeline


def live_figures(m: Metrics, bare_fps: float, seconds: float) -> dict[str, Any]:
    """The flat figures of a live run's last ``seconds`` (after the warm-up)."""
    output_fps, latency = steady_latencies(m, seconds)
    stage_p50 = {
        f"stage_{name}_p50_ms": percentile(c.durations_ms, 50) for name, c in m.stages.items()
    }
    lags = m.count_lags_ms[len(m.count_lags_ms) - len(latency):] if latency else []
    return {
        "input_fps": m.fps_in(),
        "output_fps": output_fps,
        "latency_p50_ms": percentile(latency, 50),
        "latency_p95_ms": percentile(latency, 95),
        "latency_p99_ms": percentile(latency, 99),
        # The same frames on the runtime's earlier ruler: stamped when the loop
        # counted them, after the sink (`pipeline.metrics.Metrics.count_lags_ms`).
        "latency_p50_counted_ms": percentile([ms + lag for ms, lag in
                                              zip(latency, lags, strict=True)], 50),
        "count_lag_p50_ms": percentile(lags, 50),
        **stage_p50,
        "legs_ms": {leg: round(ms, 2) for leg, ms in m.legs.means(last=len(latency)).items()},
        "frames_in": m.frames_in,
        "frames_out": m.frames_out,
        "frames_dropped": m.frames_dropped,
        "frames_failed": m.frames_failed,
        "drops_by_edge": dict(m.drops),
        "bare_loop_fps": bare_fps,
        "throughput_vs_bare_loop": output_fps / min(bare_fps, m.fps_in() or FPS),
    }


def steady_latencies(m: Metrics, seconds: float) -> tuple[float, list[float]]:
    """The output rate and the end-to-end latencies (ms) of a run's last ``seconds``."""
    steady = _steady(m, seconds)
    rate = _rate(steady) if len(steady) >= 2 else m.fps_out()
    return rate, [ms for _, ms in steady]


def _steady(m: Metrics, seconds: float) -> list[tuple[int, float]]:
    """``(delivery_ns, latency_ms)`` of the last ``seconds`` of output (after the warm-up)."""
    if not m.latencies:
        return []
    end = m.latencies[-1][0]
    return [(t, ms) for t, ms in m.latencies if end - t <= seconds * 1e9]


def _rate(delivered: list[tuple[int, float]]) -> float:
    span = (delivered[-1][0] - delivered[0][0]) / 1e9
    return (len(delivered) - 1) / span if span > 0 else 0.0


# --------------------------------------------------------------------------- backends


def run_backend_bench(
    frames: int = 60,
    config: str = DEFAULT_RANDOM_CONFIG,
    threads: int = 1,
    backends: Sequence[str] = ("torch", "onnxruntime"),
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    """Per-frame time of the motion and generate engines alone, on each CPU backend."""
    from trt_engines.bundle import load_reenactor

    torch.set_num_threads(threads)
    weights = load_reenactor(checkpoint or bundled_checkpoint(), config)
    reenactor, label = weights.reenactor, weights.label
    size = reenactor.config.size
    driver = torch.rand(1, 3, size, size) * 2 - 1
    avatar = reenactor.prepare_avatar(driver)
    feeds = {
        "latent": avatar.latent,
        "alpha": avatar.coeffs,
        **{f"feat_{k}": f for k, f in enumerate(avatar.feats)},
    }
    figures: dict[str, Any] = {"model": label, "threads": threads, "frames": frames}
    for backend in backends:
        motion, generate = open_model_engines(
            reenactor, ModelSpec(backend=BackendName(backend), threads=threads,
                                 allow_fallback=False)
        )
        figures[f"{backend}_motion_ms_p50"] = call_ms(motion.run, {"driver": driver}, frames)
        figures[f"{backend}_generate_ms_p50"] = call_ms(generate.run, feeds, frames)
        motion.close()
        generate.close()
    return figures


def call_ms(run: Callable[[dict[str, torch.Tensor]], object],
            feeds: dict[str, torch.Tensor], calls: int) -> float:
    """Median ms of ``run(feeds)`` over ``calls`` calls, after five untimed ones."""
    for _ in range(5):
        run(feeds)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return percentile(times, 50)
