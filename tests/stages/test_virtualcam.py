"""VirtualCamSink through a pyvirtualcam backend registered by the test."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import numpy as np
import pytest

pyvirtualcam = pytest.importorskip("pyvirtualcam")

from pipeline.frame import Frame  # noqa: E402
from pipeline.runtime import RunMode, RuntimeConfig, run_pipeline  # noqa: E402
from stages.io import PatternConfig, PatternSource  # noqa: E402
from stages.stamp import read_stamp  # noqa: E402
from stages.virtualcam import (  # noqa: E402
    VirtualCamConfig,
    VirtualCamError,
    VirtualCamSink,
    fit_image,
)

BACKEND = "vicocam-test-recorder"


class FakeClock:
    def __init__(self):
        self.now = 0
        self.sleeps: list[int] = []

    def now_ns(self) -> int:
        return self.now

    def sleep_ns(self, ns: int) -> None:
        self.sleeps.append(ns)
        self.now += ns


class Recorded:
    """What the test backend saw: every camera opened, and the shared fake clock."""

    def __init__(self):
        self.instances: list[Recorder] = []
        self.clock = FakeClock()


class Recorder:
    """A pyvirtualcam backend that keeps what it is sent, with the fake clock's time."""

    def __init__(self, *, width, height, fps, fourcc, device, recorded: Recorded, **kw):
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._device = device or "fake0"
        self._clock = recorded.clock
        self.frames: list[np.ndarray] = []
        self.times: list[int] = []
        self.closed = False
        recorded.instances.append(self)

    def send(self, frame):
        self.frames.append(frame.copy())
        self.times.append(self._clock.now)

    def close(self):
        self.closed = True

    def device(self):
        return self._device

    def native_fourcc(self):
        return None


@pytest.fixture
def recorder():
    recorded = Recorded()
    pyvirtualcam.register_backend(BACKEND, functools.partial(Recorder, recorded=recorded))
    yield recorded
    pyvirtualcam.camera.BACKENDS.pop(BACKEND, None)


def run_into_sink(sink: VirtualCamSink, frames: int, mode: RunMode) -> None:
    source = PatternSource(PatternConfig(width=160, height=120, fps=30, frames=frames))
    run_pipeline(source, [sink], RuntimeConfig(mode=mode))


def test_offline_frames_arrive_in_order_in_camera_format_and_paced(recorder):
    config = VirtualCamConfig(width=320, height=240, fps=25, backend=BACKEND, pacing="fixed")
    sink = VirtualCamSink(config, clock=recorder.clock)
    run_into_sink(sink, frames=8, mode=RunMode.OFFLINE)
    (cam,) = recorder.instances
    assert (cam.width, cam.height, cam.fps) == (320, 240, 25)
    assert cam.fourcc == pyvirtualcam.util.encode_fourcc(pyvirtualcam.PixelFormat.RGB.value)
    images = [f.reshape(240, 320, 3) for f in cam.frames]
    assert all(f.dtype == np.uint8 and f.size == 320 * 240 * 3 for f in cam.frames)
    assert [read_stamp(image) for image in images] == list(range(8))
    assert np.diff(cam.times).tolist() == [40_000_000] * 7  # one frame every 1/25 s
    assert cam.closed and sink.frames_sent == 8


def test_live_frames_are_sent_on_arrival_without_sleeping(recorder):
    config = VirtualCamConfig(width=160, height=120, fps=30, backend=BACKEND)
    sink = VirtualCamSink(config, clock=recorder.clock)
    run_into_sink(sink, frames=5, mode=RunMode.LIVE)
    (cam,) = recorder.instances
    indices = [read_stamp(f.reshape(120, 160, 3)) for f in cam.frames]
    assert None not in indices and len(indices) >= 1
    assert indices == sorted(i for i in indices if i is not None)
    assert recorder.clock.sleeps == []


def test_late_frames_restart_the_schedule_instead_of_bursting(recorder):
    clock = recorder.clock
    config = VirtualCamConfig(width=160, height=120, fps=10, backend=BACKEND, pacing="fixed")
    sink = VirtualCamSink(config, clock=clock)
    sink.start()
    image = np.zeros((120, 160, 3), np.uint8)
    sink.process(Frame(0, 0, image))
    clock.now += 350_000_000  # 3.5 frame intervals late
    sink.process(Frame(1, 0, image))
    sink.process(Frame(2, 0, image))
    sink.stop()
    assert clock.sleeps == [100_000_000]  # only the frame after the late one waits


def test_letterbox_crop_and_stretch():
    wide = np.full((90, 160, 3), 255, np.uint8)
    boxed = fit_image(wide, 320, 240, "letterbox")
    assert boxed.shape == (240, 320, 3)
    assert boxed[0].max() == 0 and boxed[-1].max() == 0 and boxed[120].min() == 255
    cropped = fit_image(wide, 320, 240, "crop")
    assert cropped.shape == (240, 320, 3) and cropped.min() == 255
    assert fit_image(wide, 320, 240, "stretch").shape == (240, 320, 3)
    assert fit_image(wide, 160, 90, "letterbox") is wide


def test_unknown_backend_names_the_available_ones(recorder):
    sink = VirtualCamSink(VirtualCamConfig(backend="no-such-backend"))
    with pytest.raises(VirtualCamError, match=BACKEND):
        sink.start()


@pytest.mark.skipif(platform.system() != "Linux" or any(Path("/dev").glob("video*")),
                    reason="needs Linux without any /dev/video device")
def test_missing_loopback_device_says_how_to_load_the_module():
    sink = VirtualCamSink(VirtualCamConfig(backend="v4l2loopback"))
    with pytest.raises(VirtualCamError, match="modprobe v4l2loopback") as info:
        sink.start()
    assert "Secure Boot" in str(info.value)


def test_config_rejects_odd_sizes_and_unknown_modes():
    with pytest.raises(ValueError, match="even"):
        VirtualCamConfig(width=641)
    with pytest.raises(ValueError, match="pacing"):
        VirtualCamConfig(pacing="sometimes")
