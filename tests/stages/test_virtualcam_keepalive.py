"""The virtual camera stays alive while the camera is gone.

The schedule (`Heartbeat`) is checked with made-up times; the whole path runs
for real: a fake camera behind `CameraSource` that is unplugged and plugged
back, the runtime, and `VirtualCamSink` into a pyvirtualcam backend
registered by the test that records when each frame was sent. Bands are
generous (a shared 2-core machine): the figures themselves are measured by
`measure_camera_loss`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

pyvirtualcam = pytest.importorskip("pyvirtualcam")

from pipeline.runtime import Pipeline, RunMode, RunReport, RuntimeConfig  # noqa: E402
from stages.camera import CameraConfig, CameraSource  # noqa: E402
from stages.stamp import read_stamp  # noqa: E402
from stages.virtualcam import (  # noqa: E402
    KeepAliveConfig,
    VirtualCamConfig,
    VirtualCamSink,
    render_card,
)
from stages.virtualcam.keepalive import CARD_BACKGROUND, Fill, Heartbeat, KeepAlive  # noqa: E402
from tests.stages.fake_camera import FakeWorld, H, LiveFeed, W  # noqa: E402

BACKEND = "vicocam-test-timed"
MS = 1_000_000
CARD = "card"


# ---- the schedule -------------------------------------------------------------------


def test_nothing_is_filled_before_the_first_frame():
    beat = Heartbeat(interval_ns=33 * MS, repeat_after_ns=100 * MS, card_after_ns=1000 * MS)
    assert beat.next_fill_ns is None and beat.take_due(10_000 * MS) is None


def test_silence_repeats_at_the_rate_then_shows_the_card():
    beat = Heartbeat(interval_ns=40 * MS, repeat_after_ns=100 * MS, card_after_ns=1000 * MS)
    beat.frame_sent(0)
    assert beat.take_due(99 * MS) is None
    fills = []
    for t in range(100, 1200, 10):
        fill = beat.take_due(t * MS)
        if fill is not None:
            fills.append((t, fill))
    assert [t for t, _ in fills] == list(range(100, 1200, 40))  # 100 ms, then every 40 ms
    assert {t for t, fill in fills if fill is Fill.CARD} == {t for t, _ in fills if t >= 1000}


def test_a_frame_ends_the_fills_and_a_late_fill_does_not_burst():
    beat = Heartbeat(interval_ns=40 * MS, repeat_after_ns=100 * MS, card_after_ns=1000 * MS)
    beat.frame_sent(0)
    assert beat.take_due(2000 * MS) is Fill.CARD  # taken 1.9 s late
    assert beat.take_due(2001 * MS) is None  # one fill, not 47 to catch up
    assert beat.next_fill_ns == 2040 * MS
    beat.frame_sent(2010 * MS)
    assert beat.take_due(2100 * MS) is None and beat.take_due(2110 * MS) is Fill.REPEAT


def test_default_repeat_delay_is_three_frame_intervals():
    assert KeepAliveConfig().repeat_after_ns(30) == 100 * MS
    assert KeepAliveConfig(repeat_after_s=0.25).repeat_after_ns(30) == 250 * MS
    with pytest.raises(ValueError, match="card_after_s"):
        KeepAliveConfig(card_after_s=0)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (160, 120)])
def test_the_card_is_drawn_at_the_output_size(width, height):
    card = render_card(width, height, "camera lost", "waiting for it to come back")
    assert card.shape == (height, width, 3) and card.dtype == np.uint8
    for corner in (card[0, 0], card[-1, -1], card[0, -1], card[-1, 0]):
        assert tuple(corner) == CARD_BACKGROUND
    middle = card[height // 3 : 2 * height // 3]
    assert (middle.min(axis=2) > 180).sum() > 20  # light text in the middle band
    assert (card[: height // 5].max(axis=2) > 100).sum() == 0  # nothing near the top


class ListSender:
    def __init__(self):
        self.sent: list[tuple[int, np.ndarray]] = []

    def send(self, frame):
        self.sent.append((time.monotonic_ns(), frame))


class Clock:
    def now_ns(self) -> int:
        return time.monotonic_ns()


def test_keepalive_stops_cleanly_before_any_frame_and_repeats_a_copy():
    sender = ListSender()
    beat = Heartbeat(interval_ns=10 * MS, repeat_after_ns=10 * MS, card_after_ns=10_000 * MS)
    keepalive = KeepAlive(sender, beat, render_card(8, 8, "x", "y"), Clock())
    keepalive.start()
    image = np.full((8, 8, 3), 7, np.uint8)
    keepalive.send(image)
    image[:] = 99  # an upstream stage reusing its buffer
    deadline = time.monotonic() + 10
    while keepalive.repeats < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    keepalive.stop()
    assert keepalive.repeats >= 2 and keepalive.cards == 0
    assert sender.sent[0][1] is image  # the live frame itself, sent at once
    assert all(int(frame.max()) == 7 for _, frame in sender.sent[1:])
    assert not any(t.name.endswith("-keepalive") for t in threading.enumerate())


# ---- the whole path: camera -> runtime -> virtual camera ------------------------------


class TimedRecorder:
    """A pyvirtualcam backend that keeps every frame sent, with its send time."""

    def __init__(self, *, width, height, fps, fourcc, device, sent: list, **kw):
        self.shape = (height, width, 3)
        self._device = device or "fake-timed0"
        self.sent = sent
        self.closed = False

    def send(self, frame):
        self.sent.append((time.monotonic_ns(), frame.reshape(self.shape).copy()))

    def close(self):
        self.closed = True

    def device(self):
        return self._device

    def native_fourcc(self):
        return None


@pytest.fixture
def sent():
    frames: list[tuple[int, np.ndarray]] = []
    pyvirtualcam.register_backend(BACKEND, functools.partial(TimedRecorder, sent=frames))
    yield frames
    pyvirtualcam.camera.BACKENDS.pop(BACKEND, None)


@dataclass
class LossRun:
    """What a run with the camera pulled for a while sent, and when.

    ``kinds``: per frame sent, its stamp (a camera frame, live or repeated)
    or ``"card"``. ``first_new_index``: the first stamp the camera gave once
    plugged back.
    """

    fps: float
    unplugged_ns: int
    replugged_ns: int
    first_new_index: int
    sent: list[tuple[int, np.ndarray]]
    report: RunReport
    sink: VirtualCamSink
    kinds: list[int | str | None] = field(default_factory=list)

    def times_s(self, kind_test=lambda kind: True) -> list[float]:
        return [t / 1e9 for (t, _), kind in zip(self.sent, self.kinds, strict=True)
                if kind_test(kind)]

    def count_between(self, start_ns: int, end_ns: int) -> int:
        return sum(1 for t, _ in self.sent if start_ns <= t < end_ns)

    def first_new_frame_ns(self) -> int:
        """When the first frame of the camera plugged back was sent."""
        return min(t for (t, _), k in zip(self.sent, self.kinds, strict=True)
                   if isinstance(k, int) and k >= self.first_new_index)


def classify(image: np.ndarray, card: np.ndarray) -> int | str | None:
    if np.array_equal(image, card):
        return CARD
    return read_stamp(image)


@contextlib.contextmanager
def live_run(world: FakeWorld, keepalive: KeepAliveConfig
             ) -> Iterator[tuple[VirtualCamSink, list[RunReport], LiveFeed]]:
    """The fake camera -> runtime (live) -> virtual camera, running in a thread."""
    fps = world.fps
    source = CameraSource(CameraConfig(width=W, height=H, fps=fps), opener=world.opener)
    sink = VirtualCamSink(VirtualCamConfig(width=W, height=H, fps=fps, backend=BACKEND,
                                           keepalive=keepalive))
    pipeline = Pipeline(source, [sink], RuntimeConfig(mode=RunMode.LIVE))
    reports: list[RunReport] = []
    runner = threading.Thread(target=lambda: reports.append(asyncio.run(pipeline.run())))
    with LiveFeed(world) as feed:
        runner.start()
        try:
            yield sink, reports, feed
        finally:
            pipeline.request_stop()
            runner.join(timeout=30)


def run_camera_loss(sent: list, *, loss_s: float, card_after_s: float = 1.0,
                    before_s: float = 1.0, after_s: float = 1.5, fps: float = 30) -> LossRun:
    """Run camera -> virtual camera live, pull the camera for ``loss_s``, plug it back."""
    world = FakeWorld(size=(W, H), fps=fps)
    keepalive = KeepAliveConfig(card_after_s=card_after_s)
    with live_run(world, keepalive) as (sink, reports, feed):
        time.sleep(before_s)
        unplugged = feed.unplug()
        first_new_index = feed.next_index
        time.sleep(loss_s)
        replugged = feed.replug()
        time.sleep(after_s)
    card = render_card(W, H, keepalive.card_title, keepalive.card_detail)
    run = LossRun(fps, unplugged, replugged, first_new_index, list(sent), reports[0], sink)
    run.kinds = [classify(image, card) for _, image in run.sent]
    return run


def test_a_lost_camera_keeps_the_virtual_camera_sending_then_resumes(sent):
    run = run_camera_loss(sent, loss_s=2.0, card_after_s=0.5)
    loss_frames = run.count_between(run.unplugged_ns, run.replugged_ns)
    assert loss_frames >= 0.8 * 2.0 * run.fps  # about the nominal rate through the loss
    assert None not in run.kinds  # every frame is a camera frame or the card
    # the card only once the silence passed card_after_s, and it did appear
    last_live = max(t for t, _ in run.sent if t < run.unplugged_ns)
    cards = run.times_s(lambda kind: kind == CARD)
    assert cards and min(cards) >= (last_live / 1e9) + 0.5
    assert max(cards) < run.first_new_frame_ns() / 1e9
    # the camera's frames are back, soon, and in order
    assert (run.first_new_frame_ns() - run.replugged_ns) / 1e9 < 2.0
    stamps = [k for k in run.kinds if isinstance(k, int)]
    assert stamps == sorted(stamps) and stamps[-1] > run.first_new_index
    # a clean stop
    assert run.report.reason == "stopped" and run.report.order_preserved
    keepalive = run.sink.keepalive
    assert keepalive is not None and keepalive.outages == 1 and keepalive.cards > 0
    assert not any(t.name.endswith("-keepalive") for t in threading.enumerate())


def test_flowing_frames_are_sent_as_they_come_without_fills(sent):
    with live_run(FakeWorld(size=(W, H), fps=30), KeepAliveConfig()) as (sink, _, _):
        time.sleep(1.5)
    keepalive = sink.keepalive
    assert keepalive is not None and keepalive.cards == 0
    assert sink.frames_sent >= 0.6 * 1.5 * 30
    assert keepalive.repeats <= 0.1 * sink.frames_sent  # at most a hiccup of the machine
    stamps = [read_stamp(image) for _, image in sent]
    assert None not in stamps and stamps == sorted(stamps)


def test_offline_runs_send_exactly_their_frames(sent):
    sink = VirtualCamSink(VirtualCamConfig(width=W, height=H, backend=BACKEND, pacing="fixed"))
    sink.start()
    try:
        assert sink.keepalive is None
    finally:
        sink.stop()


def measure_camera_loss(loss_s: float = 5.0, fps: float = 30) -> dict[str, float]:
    """The issue's figure: output rate through a ``loss_s`` loss and time to new frames.

    For a one-off measurement (``python -c``): registers the recorder itself.
    """
    frames: list[tuple[int, np.ndarray]] = []
    pyvirtualcam.register_backend(BACKEND, functools.partial(TimedRecorder, sent=frames))
    try:
        run = run_camera_loss(frames, loss_s=loss_s, before_s=2.0, after_s=2.0, fps=fps)
    finally:
        pyvirtualcam.camera.BACKENDS.pop(BACKEND, None)
    before = run.count_between(run.unplugged_ns - 1_000_000_000, run.unplugged_ns)
    during = run.count_between(run.unplugged_ns, run.replugged_ns)
    first_card = min(run.times_s(lambda kind: kind == CARD))
    return {
        "nominal_fps": fps,
        "fps_before_loss": before / 1.0,
        "fps_during_loss": during / loss_s,
        "rate_during_loss_pct_of_nominal": 100 * during / loss_s / fps,
        "card_after_s": first_card - run.unplugged_ns / 1e9,
        "new_camera_frame_after_replug_s": (run.first_new_frame_ns() - run.replugged_ns) / 1e9,
        "frames_sent": len(run.sent),
        "repeats": run.sink.keepalive.repeats if run.sink.keepalive else 0,
        "cards": run.sink.keepalive.cards if run.sink.keepalive else 0,
    }
