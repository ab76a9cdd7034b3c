"""`VirtualCamSink`: the avatar as a camera other apps (Zoom, Meet, OBS) can pick.

Backends (through pyvirtualcam):

* Linux: ``v4l2loopback``, a kernel module that creates a ``/dev/videoN`` which
  any app can open as a camera. Install and load it once per boot::

      sudo apt install v4l2loopback-dkms      # Debian/Ubuntu; or your distribution's package
      sudo modprobe v4l2loopback devices=1 video_nr=10 card_label="vicocam" exclusive_caps=1

  then use ``--virtualcam-device /dev/video10``. ``exclusive_caps=1`` makes
  Chrome and other WebRTC apps list the device as a camera. With Secure Boot
  enabled the module loads only if it is signed: DKMS signs it with a machine
  owner key that you enroll (``sudo mokutil --import`` of the DKMS key, then a
  reboot), otherwise disable Secure Boot; ``modprobe`` failing with "Key was
  rejected by service" means exactly this.
* Windows and macOS: ``obs``, the OBS Studio virtual camera (install OBS Studio
  26 or newer and start its virtual camera once, so it is registered).
* Windows: ``unitycapture``, the Unity Capture driver (install it from its
  release page and register it with its ``Install.bat``).

Pacing. With ``pacing="arrival"`` (live runs) a frame is sent the moment it
arrives and the sink never sleeps: the runtime already paces the source and
drops frames on its leaky edges, so a sleep here would only add latency and
hold a head token of the flow limiter; the virtual camera shows the newest
picture, which is what a consumer reading it wants. ``pacing="fixed"``
(offline runs, where frames come as fast as the graph makes them) sleeps
until the next ``1/fps`` slot before each send, so a file plays at its real
rate, like pyvirtualcam's ``sleep_until_next_frame``; a late frame is sent at
once and the schedule restarts from it rather than bursting to catch up.

Keep-alive. While no frame comes (the camera unplugged, a peer stalled), a
live sink (``pacing="arrival"``) keeps the virtual camera fed at its rate:
the last frame again after a few frame intervals, then a "camera lost" card
after ``card_after_s`` (1 s), until frames come back; a frozen virtual camera
would make Zoom or Meet drop it. See `stages.virtualcam.keepalive`. Frames
that do come are still sent the moment they arrive.

Conversion. Frames are ``(H, W, 3)`` RGB; each is fitted to the camera's
fixed size (``letterbox`` keeps the aspect ratio with black bars, ``crop``
fills and trims, ``stretch`` ignores the aspect ratio) and sent as RGB;
pyvirtualcam converts to the device's native format (I420/YUYV/NV12).
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import cv2
import numpy as np

from pipeline.frame import Frame, Image, check_image
from pipeline.stage import StageBase
from stages.io.errors import SinkError
from stages.virtualcam.keepalive import Heartbeat, KeepAlive, KeepAliveConfig, render_card

log = logging.getLogger(__name__)

FIT_MODES = ("letterbox", "crop", "stretch")
PACING_MODES = ("arrival", "fixed")

MODPROBE_LINE = (
    'sudo modprobe v4l2loopback devices=1 video_nr=10 card_label="vicocam" exclusive_caps=1'
)

PLATFORM_BACKENDS = MappingProxyType(
    {"Linux": ("v4l2loopback",), "Windows": ("obs", "unitycapture"), "Darwin": ("obs",)}
)
"""The built-in pyvirtualcam backends of each platform."""


class VirtualCamError(SinkError):
    """The virtual camera cannot be opened; the message says what to install or run."""


class PaceClock(Protocol):
    """Monotonic time and a blocking sleep, injected so pacing is testable."""

    def now_ns(self) -> int: ...

    def sleep_ns(self, ns: int) -> None: ...


class RealPaceClock:
    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_ns(self, ns: int) -> None:
        time.sleep(ns / 1e9)


@dataclass(frozen=True, slots=True)
class VirtualCamConfig:
    """Settings of `VirtualCamSink`.

    Attributes:
        width, height, fps: the virtual camera's format, fixed when it opens.
        backend: a pyvirtualcam backend name (``v4l2loopback``, ``obs``,
            ``unitycapture``, or one registered with
            ``pyvirtualcam.register_backend``); ``None`` tries the platform's.
        device: e.g. ``/dev/video10`` or ``"OBS Virtual Camera"``; ``None``
            takes the first free one.
        fit: how a frame of another aspect ratio is fitted (`FIT_MODES`).
        pacing: ``"arrival"`` (live) or ``"fixed"`` (offline); see the
            module docstring.
        keepalive: how the camera is kept fed while no frame comes (live
            pacing only: an offline run sends exactly its frames); ``None``
            sends only the frames that arrive.
        name: stage name in the graph.
    """

    width: int = 640
    height: int = 480
    fps: float = 30.0
    backend: str | None = None
    device: str | None = None
    fit: str = "letterbox"
    pacing: str = "arrival"
    keepalive: KeepAliveConfig | None = field(default_factory=KeepAliveConfig)
    name: str = "virtualcam"

    def __post_init__(self) -> None:
        if min(self.width, self.height) < 2 or self.width % 2 or self.height % 2:
            raise ValueError(f"virtual camera size must be even and >= 2, got "
                             f"{self.width}x{self.height}")
        if self.fps <= 0:
            raise ValueError(f"virtual camera fps must be > 0, got {self.fps}")
        if self.fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {FIT_MODES}, got {self.fit!r}")
        if self.pacing not in PACING_MODES:
            raise ValueError(f"pacing must be one of {PACING_MODES}, got {self.pacing!r}")


def fit_image(image: Image, width: int, height: int, mode: str) -> Image:
    """``image`` ((h, w, 3) uint8) fitted to ``(height, width, 3)`` by ``mode``."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if mode == "stretch":
        return _resize(image, width, height)
    scale = (min if mode == "letterbox" else max)(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = _resize(image, new_w, new_h)
    if mode == "crop":
        x0, y0 = (new_w - width) // 2, (new_h - height) // 2
        return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])
    out = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    out[y0 : y0 + new_h, x0 : x0 + new_w] = resized
    return out


def _resize(image: Image, width: int, height: int) -> Image:
    shrink = width * height < image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (width, height), interpolation=interp), dtype=np.uint8)


class VirtualCamSink(StageBase):
    """Sends every frame's picture to a virtual camera; returns the frame unchanged.

    ``frames_sent`` counts the frames of the stream sent; ``keepalive`` (after
    ``start``, ``None`` when off) counts the fills sent between them;
    ``backend_name``/``device`` say what was opened (after ``start``).
    """

    def __init__(self, config: VirtualCamConfig | None = None,
                 clock: PaceClock | None = None) -> None:
        self.config = config or VirtualCamConfig()
        self.name = self.config.name
        self._clock = clock or RealPaceClock()
        self._interval_ns = round(1e9 / self.config.fps)
        self._next_due: int | None = None
        self._camera: Any = None
        self.keepalive: KeepAlive | None = None
        self.frames_sent = 0
        self.backend_name: str | None = None
        self.device: str | None = None

    def start(self) -> None:
        self._camera = open_camera(self.config)
        self.backend_name = str(self._camera.backend)
        self.device = str(self._camera.device)
        log.info("%s: sending %dx%d@%g to %s (%s backend)", self.name, self.config.width,
                 self.config.height, self.config.fps, self.device, self.backend_name)
        self.keepalive = self._keepalive()
        if self.keepalive is not None:
            self.keepalive.start()

    def process(self, frame: Frame) -> Frame:
        if self._camera is None:
            raise RuntimeError(f"{self.name}: process() before start() or after stop()")
        image = check_image(frame.image, what=f"{self.name} input frame {frame.seq}")
        c = self.config
        fitted = fit_image(image, c.width, c.height, c.fit)
        if c.pacing == "fixed":
            self._wait_for_slot()
        if self.keepalive is not None:
            self.keepalive.send(fitted)
        else:
            self._camera.send(fitted)
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        if self.keepalive is not None:
            self.keepalive.stop()  # before the camera closes: no fill after it
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()

    def _keepalive(self) -> KeepAlive | None:
        """The keep-alive around the opened camera, or ``None`` (off, or fixed pacing)."""
        c = self.config
        if c.keepalive is None or c.pacing != "arrival":
            return None
        k = c.keepalive
        heartbeat = Heartbeat(self._interval_ns, k.repeat_after_ns(c.fps),
                              round(k.card_after_s * 1e9))
        card = render_card(c.width, c.height, k.card_title, k.card_detail)
        return KeepAlive(self._camera, heartbeat, card, self._clock, self.name)

    def _wait_for_slot(self) -> None:
        now = self._clock.now_ns()
        if self._next_due is not None and now < self._next_due:
            self._clock.sleep_ns(self._next_due - now)
            now = self._next_due
        # Late frames restart the schedule from now: no burst to catch up.
        self._next_due = now + self._interval_ns


def open_camera(config: VirtualCamConfig) -> Any:
    """Open a ``pyvirtualcam.Camera`` for ``config``; raise `VirtualCamError` saying what to do."""
    try:
        import pyvirtualcam
    except ImportError as exc:
        raise VirtualCamError(
            "the virtual camera needs pyvirtualcam: pip install 'vicocam[virtualcam]'"
        ) from exc
    backends = dict(pyvirtualcam.camera.BACKENDS)
    if config.backend is not None and config.backend not in backends:
        raise VirtualCamError(
            f"unknown virtual camera backend {config.backend!r}; available here: "
            f"{', '.join(sorted(backends)) or 'none'}"
        )
    try:
        return pyvirtualcam.Camera(config.width, config.height, config.fps,
                                   fmt=pyvirtualcam.PixelFormat.RGB, device=config.device,
                                   backend=config.backend, print_fps=False)
    except RuntimeError as exc:
        raise VirtualCamError(explain_backend_failure(str(exc), platform.system())) from exc


def explain_backend_failure(error: str, system: str) -> str:
    """Turn pyvirtualcam's error into one saying what to install or run."""
    if system == "Linux" and "v4l2loopback" in error:
        return (
            "no v4l2loopback virtual camera device is available. Install the module "
            "(Debian/Ubuntu: sudo apt install v4l2loopback-dkms) and load it: "
            f"{MODPROBE_LINE} ; then pass --virtualcam-device /dev/video10. With Secure "
            "Boot on, the module must be signed (enroll the DKMS key with mokutil) or "
            f"Secure Boot disabled. (pyvirtualcam said: {error})"
        )
    if system in ("Windows", "Darwin") and "obs" in error.lower():
        extra = " or the Unity Capture driver (backend unitycapture)" if system == "Windows" else ""
        return (
            "no virtual camera is installed: install OBS Studio 26 or newer and start its "
            f"virtual camera once (Tools > Start Virtual Camera){extra}. "
            f"(pyvirtualcam said: {error})"
        )
    return f"cannot open the virtual camera: {error}"


def available_backends() -> list[str]:
    """pyvirtualcam backend names usable here (empty without pyvirtualcam)."""
    try:
        import pyvirtualcam
    except ImportError:
        return []
    return sorted(pyvirtualcam.camera.BACKENDS)
