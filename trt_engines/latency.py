"""End-to-end latency of the two per-frame engines, with and without stream overlap.

One frame is ``motion(driver) -> coeffs`` then ``generate(latent, alpha=coeffs,
feat_k) -> image`` (the composition of ``alpha`` is a few vector ops and is
left out). `frame_latency` times a run of frames in one of two modes:

- ``sequential``: one stream, both engines, then a synchronize; the next
  frame starts only when the image is done;
- ``overlapped``: the motion engine on its own stream in the caller's
  thread, the generate engine on a second stream in a worker thread, one
  frame handed over at a time through an event (as the runtime's stages do),
  so frame ``i + 1``'s motion runs while frame ``i`` renders.

Latency is from the start of a frame's motion call to its image being done;
the rate is frames over wall time. Streams come from
`trt_engines.streams.make_stream`, so the same code runs on the CPU (where
"overlap" is two threads) and on CUDA.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from trt_engines.engine import Engine
from trt_engines.streams import DeviceStream, StreamEvent, make_stream

MODES = ("sequential", "overlapped")
Clock = Callable[[], float]


@dataclass(frozen=True)
class LatencyFigures:
    """Figures of one timed run (warm-up frames excluded)."""

    mode: str
    frames: int
    latency_ms_p50: float
    latency_ms_p95: float
    fps: float

    def line(self) -> str:
        return (
            f"{self.mode:<11} {self.frames:>6} {self.latency_ms_p50:>9.2f} "
            f"{self.latency_ms_p95:>9.2f} {self.fps:>8.1f}"
        )


def latency_table(figures: list[LatencyFigures]) -> str:
    header = f"{'mode':<11} {'frames':>6} {'p50 ms':>9} {'p95 ms':>9} {'fps':>8}"
    return "\n".join([header, *(f.line() for f in figures)])


@dataclass(frozen=True)
class FrameInputs:
    """What stays the same for every frame: the driver crop and the avatar.

    Attributes:
        driver: ``[1, 3, S, S]`` on the engines' device.
        avatar: the generate graph's other inputs (``latent``, ``feat_k``),
            on the engines' device.
    """

    driver: torch.Tensor
    avatar: Mapping[str, torch.Tensor]


def frame_latency(
    motion: Engine,
    generate: Engine,
    inputs: FrameInputs,
    *,
    mode: str,
    frames: int = 100,
    warmup: int = 5,
    clock: Clock = time.perf_counter,
) -> LatencyFigures:
    """Time ``frames`` frames in ``mode`` (see the module doc) after ``warmup`` untimed ones."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if frames < 1 or warmup < 0:
        raise ValueError(f"need frames >= 1 and warmup >= 0, got {frames} and {warmup}")
    device = generate.device
    run = _sequential if mode == "sequential" else _overlapped
    run(motion, generate, inputs, device, warmup, clock)
    start = clock()
    latencies = run(motion, generate, inputs, device, frames, clock)
    wall = clock() - start
    return LatencyFigures(
        mode,
        frames,
        _percentile(latencies, 50),
        _percentile(latencies, 95),
        frames / wall if wall > 0 else float("inf"),
    )


def _percentile(values: list[float], q: float) -> float:
    """Percentile ``q`` of ``values`` (seconds), in milliseconds."""
    from pipeline.metrics import percentile

    return percentile(values, q) * 1000


def _sequential(
    motion: Engine,
    generate: Engine,
    inputs: FrameInputs,
    device: torch.device,
    frames: int,
    clock: Clock,
) -> list[float]:
    stream = make_stream(device)
    latencies = []
    for _ in range(frames):
        start = clock()
        with stream.activate():
            coeffs = motion.run({"driver": inputs.driver})["coeffs"]
            generate.run({**inputs.avatar, "alpha": coeffs})
        stream.synchronize()
        latencies.append(clock() - start)
    return latencies


_Handoff = tuple[float, torch.Tensor, StreamEvent] | None


def _overlapped(
    motion: Engine,
    generate: Engine,
    inputs: FrameInputs,
    device: torch.device,
    frames: int,
    clock: Clock,
) -> list[float]:
    first, second = make_stream(device), make_stream(device)
    handoff: queue.Queue[_Handoff] = queue.Queue(maxsize=1)  # one frame in flight between them
    with ThreadPoolExecutor(1, thread_name_prefix="generate") as pool:
        rendered = pool.submit(_render_loop, generate, inputs, second, handoff, clock)
        try:
            for _ in range(frames):
                start = clock()
                with first.activate():
                    # Engines may return views into reused buffers: keep a copy.
                    coeffs = motion.run({"driver": inputs.driver})["coeffs"].clone()
                _hand_over(handoff, (start, coeffs, first.record()), rendered)
        finally:
            _hand_over(handoff, None, rendered)
        return rendered.result()


def _hand_over(
    handoff: queue.Queue[_Handoff], item: _Handoff, consumer: Future[list[float]]
) -> None:
    """Put ``item`` once there is room; stop waiting if the consumer has ended (it raised)."""
    while not consumer.done():
        try:
            handoff.put(item, timeout=0.05)
            return
        except queue.Full:
            continue
    consumer.result()  # re-raise the render thread's error here


def _render_loop(
    generate: Engine,
    inputs: FrameInputs,
    stream: DeviceStream,
    handoff: queue.Queue[_Handoff],
    clock: Clock,
) -> list[float]:
    latencies = []
    while (item := handoff.get()) is not None:
        start, coeffs, ready = item
        stream.wait(ready)
        with stream.activate():
            generate.run({**inputs.avatar, "alpha": coeffs})
        stream.synchronize()
        latencies.append(clock() - start)
    return latencies
