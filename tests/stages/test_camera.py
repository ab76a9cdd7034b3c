"""CameraSource against a fake device: negotiation, newest-frame reads, errors,
and surviving an unplug / replug without ending the stream."""

from __future__ import annotations

import platform
import threading
import time
from typing import Any

import pytest

from stages.camera import CameraConfig, CameraError, CameraSource, DeviceRequest
from stages.camera.device import explain_open_failure, list_linux_cameras, open_cv2_device
from stages.camera.fake import FAKE_SIZE, FakeWorld
from stages.camera.source import reconnect_delays
from stages.stamp import read_stamp

W, H = FAKE_SIZE


def make_source(world: FakeWorld, **overrides) -> CameraSource:
    settings: dict[str, Any] = dict(width=640, height=480, fps=30, read_timeout_s=0.05,
                                    lost_after_failures=3, reconnect_s=0.01,
                                    reconnect_max_s=0.05)
    settings.update(overrides)
    return CameraSource(CameraConfig(**settings), opener=world.opener)


def read_index(source: CameraSource) -> int | None:
    frame = source.read()
    assert frame is not None
    return read_stamp(frame.image)


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_open_reports_what_the_camera_gives_and_frames_are_rgb():
    world = FakeWorld(size=(W, H), fps=15.0)
    world.push(0)
    source = make_source(world)
    try:
        info = source.open()
        assert (info.width, info.height) == (W, H)  # asked 640x480, got 160x120
        assert info.frame_rate == 15 and info.self_paced
        assert source.negotiated is not None and source.negotiated.fps == 15.0
        frame = source.read()
        assert frame is not None and frame.image.shape == (H, W, 3)
        assert frame.image[H // 2, W // 2].tolist() == [0, 0, 200]  # BGR blue -> RGB blue
        assert read_stamp(frame.image) == 0
        assert frame.capture_ns is not None
    finally:
        source.close()


def test_read_returns_the_newest_frame_not_a_queue():
    world = FakeWorld()
    world.push(0)
    source = make_source(world)
    try:
        source.open()
        assert read_index(source) == 0
        for index in range(1, 6):
            world.push(index)
        wait_until(lambda: world.frames.empty() and getattr(source._slot.peek(), "number", 0) == 6)
        assert read_index(source) == 5
        assert source.replaced == 4
    finally:
        source.close()


def test_unplug_keeps_the_stream_alive_and_replug_resumes():
    world = FakeWorld()
    world.push(0)
    source = make_source(world)
    try:
        source.open()
        first_device = world.opened[0]
        assert read_index(source) == 0
        world.plugged.clear()
        wait_until(lambda: first_device.released)  # noticed the loss and let go
        wait_until(lambda: len(world.opened) >= 3)  # kept trying to reopen

        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.append(source.read()))
        reader.start()
        reader.join(timeout=0.3)
        assert reader.is_alive() and not got  # blocks, does not end the stream

        world.plugged.set()
        world.push(7)
        reader.join(timeout=10)
        assert not reader.is_alive()
        assert got[0] is not None and read_stamp(got[0].image) == 7
        assert source.reconnects == 1
        assert all(r.device == 0 for r in world.requests)
    finally:
        source.close()
    assert all(d.released for d in world.opened)


def test_close_unblocks_a_waiting_read():
    world = FakeWorld()
    world.push(0)
    source = make_source(world)
    source.open()
    source.read()
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(source.read()))
    reader.start()
    source.close()
    reader.join(timeout=10)
    assert got == [None]


def test_a_camera_that_does_not_open_raises_a_clear_error():
    world = FakeWorld()
    world.plugged.clear()
    source = make_source(world, device="/dev/video-vicocam-missing")
    with pytest.raises(CameraError, match=r"did not open|not found"):
        source.open()
    assert world.opened[0].released


def test_a_camera_that_opens_but_gives_nothing_raises():
    world = FakeWorld()  # nothing pushed: every read times out
    source = make_source(world)
    with pytest.raises(CameraError, match="gave no picture"):
        source.open()


def test_requested_mode_is_sent_to_the_device():
    import cv2

    world = FakeWorld()
    world.push(0)
    source = make_source(world, width=1280, height=720, fps=60, fourcc="MJPG")
    try:
        source.open()
        props = world.opened[0].props
        assert props[cv2.CAP_PROP_FRAME_WIDTH] == 1280
        assert props[cv2.CAP_PROP_FRAME_HEIGHT] == 720
        assert props[cv2.CAP_PROP_FPS] == 60
        assert props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG")
    finally:
        source.close()


@pytest.mark.parametrize(
    ("exists", "accessible", "expected"),
    [(False, None, "does not exist"), (True, False, "video' group"), (True, True, "in use")],
)
def test_linux_open_failures_say_what_to_do(exists, accessible, expected):
    message = explain_open_failure(2, "Linux", exists=exists, accessible=accessible)
    assert "/dev/video2" in message and expected in message


@pytest.mark.parametrize("system", ["Darwin", "Windows"])
def test_other_platform_failures_mention_permissions(system):
    assert "Camera" in explain_open_failure(0, system, exists=None, accessible=None)


def test_linux_listing_skips_metadata_nodes_and_flags_loopback(tmp_path):
    for node, name, index in [("video0", "HD Webcam", "0"), ("video1", "HD Webcam", "1"),
                              ("video10", "vicocam", "0")]:
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
        (tmp_path / node / "index").write_text(index + "\n")
    virtual = tmp_path / "devices" / "virtual" / "video4linux" / "video10"
    virtual.mkdir(parents=True)
    (virtual / "name").write_text("vicocam\n")
    (virtual / "index").write_text("0\n")
    (tmp_path / "video10" / "name").unlink()
    (tmp_path / "video10" / "index").unlink()
    (tmp_path / "video10").rmdir()
    (tmp_path / "video10").symlink_to(virtual)
    cameras = list_linux_cameras(tmp_path)
    assert [(c.device, c.name, c.virtual) for c in cameras] == [
        (0, "HD Webcam", False), (10, "vicocam", True)]
    assert cameras[0].path == "/dev/video0"


def test_config_rejects_half_a_size():
    with pytest.raises(ValueError, match="both"):
        CameraConfig(width=640, height=None)


@pytest.mark.skipif(platform.system() != "Linux", reason="V4L2 device nodes are Linux's")
def test_a_missing_v4l2_node_is_not_opened_and_opencv_stays_quiet(capfd):
    device = open_cv2_device(DeviceRequest("/dev/video-vicocam-missing", "v4l2"))
    assert not device.isOpened() and device.read() == (False, None)
    device.release()
    assert "WARN" not in capfd.readouterr().err


def test_reconnect_waits_double_up_to_the_longest():
    delays = reconnect_delays(0.25, 0.5)
    assert [next(delays) for _ in range(4)] == [0.25, 0.5, 0.5, 0.5]
    assert CameraConfig().reconnect_max_s <= 0.5  # a camera back is seen within 0.5 s
    with pytest.raises(ValueError, match="reconnect_max_s"):
        CameraConfig(reconnect_s=1.0, reconnect_max_s=0.5)
