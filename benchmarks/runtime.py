"""Benchmarks of the streaming runtime itself (no model).

Each answers one question and returns a flat dict of figures:

* `bench_overhead`: what does one stage hop cost, compared with calling the
  same no-op stages in a bare loop?
* `bench_overload`: with a 30 fps live source into a 50 ms stage, does the
  output hold the stage's rate with bounded, non-growing latency, and is
  every frame accounted for?
* `bench_pipelining`: do two balanced compute stages overlap (speedup over a
  sequential loop)?
* `bench_lossless`: does an offline file-to-file run through a slow stage
  keep every frame, in order?
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.frame import Frame
from pipeline.metrics import percentile
from pipeline.runtime import Pipeline, RunMode, RunReport, RuntimeConfig
from pipeline.stage import SourceFrame, SourceInfo, Stage, StageBase


class RepeatSource:
    """Hands out one pre-made picture ``frames`` times (no decode cost).

    Used where the question is about the runtime, so the source must cost
    nothing measurable; each frame gets its own copy-free view.
    """

    name = "repeat"

    def __init__(self, frames: int, fps: float = 30.0, size: tuple[int, int] = (64, 48)) -> None:
        self._left = frames
        self._fps = Fraction(fps).limit_denominator(1001)
        self._image = np.zeros((size[1], size[0], 3), np.uint8)
        self._count = frames

    def open(self) -> SourceInfo:
        return SourceInfo(self._image.shape[1], self._image.shape[0], self._fps, False, self._count)

    def read(self) -> SourceFrame | None:
        if self._left <= 0:
            return None
        self._left -= 1
        return SourceFrame(self._image)

    def close(self) -> None:
        return None


class NoOpStage(StageBase):
    """Returns the frame untouched; runs in its own worker thread."""

    def __init__(self, name: str) -> None:
        self.name = name

    def process(self, frame: Frame) -> Frame:
        return frame


def precise_wait(seconds: float) -> None:
    """Wait ``seconds`` with the GIL released, accurate to ~0.1 ms.

    ``time.sleep`` alone overshoots by up to a scheduler tick; sleeping in
    short slices until a deadline holds the requested duration while still
    releasing the GIL, as a model call in native code would.
    """
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        time.sleep(min(left, 0.0005))


class WaitStage(StageBase):
    """Stands in for a model: a calibrated, GIL-releasing wait per frame."""

    def __init__(self, name: str, ms: float) -> None:
        self.name = name
        self.seconds = ms / 1000.0

    def process(self, frame: Frame) -> Frame:
        precise_wait(self.seconds)
        return frame


class MatmulStage(StageBase):
    """Real GIL-releasing compute: ``reps`` float32 matrix products."""

    def __init__(self, name: str, size: int, reps: int) -> None:
        self.name = name
        self.reps = reps
        rng = np.random.default_rng(0)
        self._a = rng.standard_normal((size, size), dtype=np.float32)
        self._b = rng.standard_normal((size, size), dtype=np.float32)

    def work(self) -> None:
        for _ in range(self.reps):
            np.matmul(self._a, self._b)

    def process(self, frame: Frame) -> Frame:
        self.work()
        return frame


def _run(source: RepeatSource, stages: list[Stage], config: RuntimeConfig) -> RunReport:
    return asyncio.run(Pipeline(source, stages, config).run())


# ---- overhead ------------------------------------------------------------------
def bench_overhead(stages: int = 8, frames: int = 600) -> dict[str, Any]:
    """Per-frame latency through ``stages`` threaded no-op stages, minus a bare loop.

    One frame in flight at a time, so the figure is the cost of the hops
    (thread hand-off, edge, bookkeeping), not queueing.
    """
    chain: list[Stage] = [NoOpStage(f"noop{i}") for i in range(stages)]
    config = RuntimeConfig(mode=RunMode.OFFLINE, max_in_flight=1)
    report = _run(RepeatSource(frames), chain, config)
    runtime_ms = report.metrics.latency_ms()
    bare_ms = _bare_loop_ms(chain, frames)
    per_stage = [(r - b) / stages for r, b in zip(runtime_ms, bare_ms, strict=False)]
    return {
        "stages": stages,
        "frames": frames,
        "overhead_ms_per_stage_p50": percentile(per_stage, 50),
        "overhead_ms_per_stage_p95": percentile(per_stage, 95),
        "runtime_ms_per_frame_p50": percentile(runtime_ms, 50),
        "bare_loop_ms_per_frame_p50": percentile(bare_ms, 50),
    }


def _bare_loop_ms(chain: list[Stage], frames: int) -> list[float]:
    source = RepeatSource(frames)
    source.open()
    times = []
    seq = 0
    while (got := source.read()) is not None:
        t0 = time.monotonic_ns()
        frame: Frame | None = Frame(seq, t0, got.image)
        for stage in chain:
            assert frame is not None
            frame = stage.process(frame)
        times.append((time.monotonic_ns() - t0) / 1e6)
        seq += 1
    return times


# ---- overload ------------------------------------------------------------------
def bench_overload(
    seconds: float = 15.0, stage_ms: float = 50.0, fps: float = 30.0
) -> dict[str, Any]:
    """A live source faster than its one stage: rate held, latency bounded, all counted."""
    frames = round(seconds * fps)
    config = RuntimeConfig(mode=RunMode.LIVE)
    report = _run(RepeatSource(frames, fps), [WaitStage("model", stage_ms)], config)
    m = report.metrics
    stage_measured = statistics.median(m.stages["model"].durations_ms)
    return {
        "stage_ms": stage_measured,
        "stage_ms_requested": stage_ms,
        "source_fps": m.fps_in(),
        "output_fps": m.fps_out(),
        "frames_in": m.frames_in,
        "frames_out": m.frames_out,
        "frames_dropped": m.frames_dropped,
        "frames_failed": m.frames_failed,
        "latency_p50_ms": percentile(m.latency_ms(), 50),
        "latency_p99_ms_first": percentile(m.latency_window(0.0, 1 / 3), 99),
        "latency_p99_ms_last": percentile(m.latency_window(2 / 3, 1.0), 99),
        "drops_by_edge": dict(m.drops),
    }


# ---- pipelining ----------------------------------------------------------------
@dataclass(frozen=True)
class _Work:
    size: int
    reps: int


def calibrate_matmul(target_ms: float, size: int = 256) -> _Work:
    """Pick a repetition count so one stage's work takes about ``target_ms``.

    Uses the fastest of several timed runs: on a shared machine the mean is
    inflated by other processes, which would make the stages too short.
    """
    probe = MatmulStage("probe", size, 4)
    probe.work()
    best = math.inf
    for _ in range(10):
        t0 = time.perf_counter()
        probe.work()
        best = min(best, time.perf_counter() - t0)
    one_ms = best * 1000 / probe.reps
    return _Work(size, max(1, round(target_ms / one_ms)))


def bench_pipelining(frames: int = 150, stage_ms: float = 20.0) -> dict[str, Any]:
    """Two balanced compute stages: pipelined through the runtime vs a sequential loop.

    BLAS is limited to one thread so each stage's compute sits on one core,
    as a per-stage model would; the two then overlap on two cores.
    """
    with _single_thread_blas():
        work = calibrate_matmul(stage_ms)
        stages: list[Stage] = [MatmulStage(f"step{i}", work.size, work.reps) for i in (1, 2)]
        t0 = time.perf_counter()
        _bare_loop_ms(stages, frames)
        sequential_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = _run(RepeatSource(frames), stages, RuntimeConfig(mode=RunMode.OFFLINE))
        pipelined_s = time.perf_counter() - t0
    m = report.metrics
    return {
        "frames": frames,
        "stage_ms_p50": {name: percentile(c.durations_ms, 50) for name, c in m.stages.items()},
        "sequential_s": sequential_s,
        "pipelined_s": pipelined_s,
        "sequential_fps": frames / sequential_s,
        "pipelined_fps": frames / pipelined_s,
        "speedup_vs_sequential": sequential_s / pipelined_s,
        "frames_out": m.frames_out,
    }


def _single_thread_blas() -> contextlib.AbstractContextManager[object]:
    """Limit numpy's BLAS to one thread for a block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---- lossless --------------------------------------------------------------------
def bench_lossless(
    frames: int = 1200, stage_ms: float = 2.0, workdir: Path | None = None
) -> dict[str, Any]:
    """Render a real file offline through a slow stage; count and check order from pixels."""
    from benchmarks.lossless import run_lossless

    return run_lossless(frames=frames, stage_ms=stage_ms, workdir=workdir)
