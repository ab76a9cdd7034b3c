"""The virtual camera stays alive while the camera is gone.

The schedule (`Heartbeat`) is checked with made-up times; the whole path runs
for real: a fake camera behind `CameraSource` that is unplugged and plugged
back, the runtime, and `VirtualCamSink` into a pyvirtualcam backend
that records when each frame was sent. That harness is the camera-loss
benchmark's (`benchmarks.camera_loss`), so the tests and the published figures
run the same code. Bands are generous (a shared 2-core machine): the figures
themselves come from ``vicocam bench camera-loss``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("pyvirtualcam")

from benchmarks.camera_loss import (
    CARD,
    RECORDER_BACKEND,
    LossConfig,
    live_run,
    recording_backend,
    run_camera_loss,
)
from stages.camera.fake import FAKE_SIZE, FakeWorld
from stages.stamp import read_stamp
from stages.virtualcam import (
    KeepAliveConfig,
    VirtualCamConfig,
    VirtualCamSink,
    render_card,
)
from stages.virtualcam.keepalive import CARD_BACKGROUND, Fill, Heartbeat, KeepAlive

W, H = FAKE_SIZE
MS = 1_000_000


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


@pytest.fixture
def sent():
    with recording_backend() as frames:
        yield frames


def test_a_lost_camera_keeps_the_virtual_camera_sending_then_resumes():
    run = run_camera_loss(LossConfig(loss_s=2.0, card_after_s=0.5, before_s=1.0, after_s=1.5))
    loss_frames = run.count_between(run.unplugged_ns, run.replugged_ns)
    assert loss_frames >= 0.8 * 2.0 * run.config.fps  # about the nominal rate through the loss
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
    sink = VirtualCamSink(VirtualCamConfig(width=W, height=H, backend=RECORDER_BACKEND,
                                           pacing="fixed"))
    sink.start()
    try:
        assert sink.keepalive is None
    finally:
        sink.stop()
