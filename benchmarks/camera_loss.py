"""Does the virtual camera ride out a lost camera? ``vicocam bench camera-loss``.

The fake camera of `stages.camera.fake` feeds `CameraSource`, the live
runtime and a `VirtualCamSink` whose pyvirtualcam backend is `TimedRecorder`,
registered here for the run: it keeps every frame sent with its send time.
After ``before_s`` of steady frames the camera is pulled for ``loss_s``, then
plugged back for ``after_s``. Each frame sent is told apart by its pixels: a
camera frame (its stamp; a repeat carries the stamp of the frame it repeats)
or the "camera lost" card.

The targets: the virtual camera keeps its nominal rate (within 5%) through
the loss, and the new camera's frames are out within 1 s of it coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from pipeline.errors import UserError
from pipeline.frame import Image
from pipeline.runtime import Pipeline, RunMode, RunReport, RuntimeConfig
from stages.camera import CameraConfig, CameraSource
from stages.camera.fake import FAKE_SIZE, FakeWorld, LiveFeed
from stages.stamp import read_stamp
from stages.virtualcam import KeepAliveConfig, VirtualCamConfig, VirtualCamSink, render_card

RECORDER_BACKEND = "vicocam-timed-recorder"
"""The pyvirtualcam backend name `recording_backend` registers."""
CARD = "card"
"""What `classify` calls a frame that is the card."""
RATE_TOLERANCE = 0.05
"""Target: the rate through the loss within this share of nominal."""
RESUME_TARGET_S = 1.0
"""Target: the new camera's first frame out within this long of the replug."""

_SECOND_NS = 1_000_000_000
_STOP_JOIN_S = 30.0

Sent = list[tuple[int, Image]]
"""``(monotonic ns when sent, the frame)`` per frame the virtual camera got."""
Kind = int | str | None
"""A sent frame's stamp, `CARD`, or ``None`` (neither: something went wrong)."""


class TimedRecorder:
    """A pyvirtualcam backend that keeps every frame sent, with its send time."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: Any,
                 device: str | None, sent: Sent, **_: Any) -> None:
        self.shape = (height, width, 3)
        self._device = device or "timed-recorder0"
        self.sent = sent
        self.closed = False

    def send(self, frame: Image) -> None:
        self.sent.append((time.monotonic_ns(), frame.reshape(self.shape).copy()))

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> None:
        return None


def _pyvirtualcam() -> ModuleType:
    try:
        import pyvirtualcam
    except ImportError as exc:
        raise UserError(
            "the camera-loss benchmark needs pyvirtualcam: pip install 'vicocam[virtualcam]'"
        ) from exc
    return pyvirtualcam


@contextlib.contextmanager
def recording_backend(name: str = RECORDER_BACKEND) -> Iterator[Sent]:
    """Register a `TimedRecorder` backend as ``name``; yield the list it fills."""
    pyvirtualcam = _pyvirtualcam()
    sent: Sent = []
    pyvirtualcam.register_backend(name, functools.partial(TimedRecorder, sent=sent))
    try:
        yield sent
    finally:
        pyvirtualcam.camera.BACKENDS.pop(name, None)


@dataclass(frozen=True, slots=True)
class LossConfig:
    """One camera-loss run.

    Attributes:
        loss_s: how long the camera stays unplugged.
        card_after_s: the keep-alive's silence before the card.
        before_s: steady frames before the unplug (>= 1: the rate before the
            loss is counted over its last second).
        after_s: frames after the replug, before the run stops.
        fps: the camera's and the virtual camera's rate.
    """

    loss_s: float = 5.0
    card_after_s: float = 1.0
    before_s: float = 2.0
    after_s: float = 2.0
    fps: float = 30.0

    def __post_init__(self) -> None:
        if min(self.loss_s, self.card_after_s, self.after_s, self.fps) <= 0:
            raise ValueError("camera-loss times and fps must be > 0")
        if self.before_s < 1.0:
            raise ValueError(f"before_s must be >= 1 s, got {self.before_s}")


@dataclass
class LossRun:
    """What a run with the camera pulled for a while sent, and when.

    ``kinds``: per frame sent, its `Kind`. ``first_new_index``: the first
    stamp the camera gave once plugged back.
    """

    config: LossConfig
    unplugged_ns: int
    replugged_ns: int
    first_new_index: int
    sent: Sent
    report: RunReport
    sink: VirtualCamSink
    kinds: list[Kind] = field(default_factory=list)

    def times_s(self, kind_test: Callable[[Kind], bool] = lambda kind: True) -> list[float]:
        """Send times (s) of the frames whose kind passes ``kind_test``."""
        return [t / 1e9 for (t, _), kind in zip(self.sent, self.kinds, strict=True)
                if kind_test(kind)]

    def count_between(self, start_ns: int, end_ns: int) -> int:
        return sum(1 for t, _ in self.sent if start_ns <= t < end_ns)

    def first_new_frame_ns(self) -> int:
        """When the first frame of the camera plugged back was sent."""
        return min(t for (t, _), k in zip(self.sent, self.kinds, strict=True)
                   if isinstance(k, int) and k >= self.first_new_index)


def classify(image: Image, card: Image) -> Kind:
    """The `Kind` of one frame the virtual camera got."""
    if np.array_equal(image, card):
        return CARD
    return read_stamp(image)


@contextlib.contextmanager
def live_run(world: FakeWorld, keepalive: KeepAliveConfig, backend: str = RECORDER_BACKEND
             ) -> Iterator[tuple[VirtualCamSink, list[RunReport], LiveFeed]]:
    """The fake camera -> runtime (live) -> virtual camera, running in a thread.

    ``backend`` must be registered (`recording_backend`); the report list
    holds the run's `RunReport` once the block has left.
    """
    width, height = world.size
    source = CameraSource(CameraConfig(width=width, height=height, fps=world.fps),
                          opener=world.opener)
    sink = VirtualCamSink(VirtualCamConfig(width=width, height=height, fps=world.fps,
                                           backend=backend, keepalive=keepalive))
    pipeline = Pipeline(source, [sink], RuntimeConfig(mode=RunMode.LIVE))
    reports: list[RunReport] = []
    runner = threading.Thread(target=lambda: reports.append(asyncio.run(pipeline.run())),
                              name="camera-loss-run")
    with LiveFeed(world) as feed:
        runner.start()
        try:
            yield sink, reports, feed
        finally:
            pipeline.request_stop()
            runner.join(timeout=_STOP_JOIN_S)
    if not reports:
        raise RuntimeError("the camera-loss run did not stop within "
                           f"{_STOP_JOIN_S:g} s of being asked to")


def run_camera_loss(config: LossConfig) -> LossRun:
    """Run camera -> virtual camera live, pull the camera for ``loss_s``, plug it back."""
    world = FakeWorld(size=FAKE_SIZE, fps=config.fps)
    keepalive = KeepAliveConfig(card_after_s=config.card_after_s)
    with recording_backend() as sent, live_run(world, keepalive) as (sink, reports, feed):
        time.sleep(config.before_s)
        unplugged = feed.unplug()
        first_new_index = feed.next_index
        time.sleep(config.loss_s)
        replugged = feed.replug()
        time.sleep(config.after_s)
    card = render_card(*FAKE_SIZE, keepalive.card_title, keepalive.card_detail)
    run = LossRun(config, unplugged, replugged, first_new_index, list(sent), reports[0], sink)
    run.kinds = [classify(image, card) for _, image in run.sent]
    return run


def loss_figures(run: LossRun) -> dict[str, Any]:
    """The benchmark's figures for one run (times in seconds, rates in frames/s)."""
    c = run.config
    during_fps = run.count_between(run.unplugged_ns, run.replugged_ns) / c.loss_s
    resume_s = (run.first_new_frame_ns() - run.replugged_ns) / 1e9
    keepalive = run.sink.keepalive
    return {
        "loss_s": c.loss_s,
        "keepalive_card_after_s": c.card_after_s,
        "nominal_fps": c.fps,
        "fps_before_loss": run.count_between(run.unplugged_ns - _SECOND_NS, run.unplugged_ns),
        "fps_during_loss": during_fps,
        "rate_during_loss_pct_of_nominal": 100 * during_fps / c.fps,
        "card_appeared_after_loss_s": _first_card_after_s(run),
        "new_camera_frame_after_replug_s": resume_s,
        "frames_sent": len(run.sent),
        "frames_unrecognised": run.kinds.count(None),
        "repeats": keepalive.repeats if keepalive else 0,
        "cards": keepalive.cards if keepalive else 0,
        "rate_within_5pct_through_loss": abs(during_fps / c.fps - 1) <= RATE_TOLERANCE,
        "new_camera_output_within_1s": resume_s <= RESUME_TARGET_S,
    }


def _first_card_after_s(run: LossRun) -> float | None:
    """Seconds from the unplug to the first card (``None``: no card was sent)."""
    cards = run.times_s(lambda kind: kind == CARD)
    return min(cards) - run.unplugged_ns / 1e9 if cards else None


def run_camera_loss_bench(seconds: float) -> dict[str, Any]:
    """One run with the camera pulled for ``seconds``: `loss_figures`."""
    return loss_figures(run_camera_loss(LossConfig(loss_s=seconds)))
