"""`CameraSource`: a local camera as a self-paced `Source`, surviving unplugging.

Threads and ownership::

    capture thread:  device.read() -> latest-frame slot   (never blocks on the graph)
    source worker:   read() waits for a frame newer than the last one it returned

The capture thread reads as fast as the camera delivers and overwrites a
single slot, so the graph always gets the newest picture and a slow graph
never makes the camera buffer up (latency cannot grow). Colour conversion
(BGR -> RGB) happens in ``read()``, only for frames the graph takes.

Unplugging: after ``lost_after_failures`` failed reads in a row (or when the
device reports it is closed) the capture thread releases the device, logs
that the camera is lost and tries to reopen it, first after ``reconnect_s``,
then with the wait doubling up to ``reconnect_max_s`` (`reconnect_delays`).
The longest wait is kept short (0.5 s) because it bounds how late a camera
that comes back is picked up; a failed attempt on a missing device costs
next to nothing. Meanwhile ``read()`` keeps blocking: it wakes every
``read_timeout_s`` to log that it is still waiting, and never returns ``None``
just because the camera is gone, so the runtime keeps the stream alive (a
virtual camera downstream keeps sending on its own: see
`stages.virtualcam.keepalive`) and the picture resumes by itself when the
camera comes back, which is logged with the length of the loss. Only
``close()`` ends the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.frame import DEFAULT_TIME_BASE, Image
from pipeline.stage import SourceFrame, SourceInfo, as_fraction
from stages.camera.device import (
    CAPTURE_BACKENDS,
    DeviceOpener,
    DeviceRequest,
    VideoDevice,
    diagnose_open_failure,
    open_cv2_device,
)
from stages.camera.slot import LatestSlot
from stages.io.errors import SourceError

log = logging.getLogger(__name__)

_WAIT_LOG_EVERY_S = 10.0  # repeat "still waiting for the camera" at most this often


class CameraError(SourceError):
    """A camera cannot be used: missing, busy, no permission, bad settings."""


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """Settings of `CameraSource`.

    Attributes:
        device: camera index (``0`` = first) or a device path (``/dev/video2``).
        width, height: size to ask for; ``None`` keeps the camera's default.
            The camera may give another size: `CameraSource.open` reports
            what it actually delivers (see ``negotiated``).
        fps: rate to ask for; ``None`` keeps the camera's default.
        fourcc: pixel format to ask for, e.g. ``"MJPG"`` (USB cameras often
            need it for 720p at 30 fps); ``None`` keeps the default.
        backend: ``"auto"`` (the platform's: V4L2, AVFoundation, MSMF) or a
            name from `CAPTURE_BACKENDS` (``"dshow"`` on older Windows cameras).
        read_timeout_s: how long ``read()`` waits before logging that no
            frame came (it then keeps waiting; see the module docstring).
        lost_after_failures: failed reads in a row that count as unplugged.
        reconnect_s, reconnect_max_s: first and longest wait between reopen
            attempts (doubling in between). ``reconnect_max_s`` bounds how
            long a camera that is back goes unnoticed.
        name: source name in the graph.
    """

    device: int | str = 0
    width: int | None = 640
    height: int | None = 480
    fps: float | None = 30
    fourcc: str | None = None
    backend: str = "auto"
    read_timeout_s: float = 2.0
    lost_after_failures: int = 5
    reconnect_s: float = 0.25
    reconnect_max_s: float = 0.5
    name: str = "camera"

    def __post_init__(self) -> None:
        if (self.width is None) != (self.height is None):
            raise ValueError("give both camera width and height, or neither")
        if self.width is not None and self.height is not None and min(self.width, self.height) < 1:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"camera fps must be > 0, got {self.fps}")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters such as MJPG, got {self.fourcc!r}")
        if self.backend != "auto" and self.backend not in CAPTURE_BACKENDS:
            raise ValueError(f"unknown camera backend {self.backend!r}; use auto or one of "
                             f"{', '.join(CAPTURE_BACKENDS)}")
        if self.read_timeout_s <= 0 or self.reconnect_s <= 0 or self.reconnect_max_s <= 0:
            raise ValueError("camera timeouts must be > 0")
        if self.lost_after_failures < 1:
            raise ValueError("lost_after_failures must be >= 1")
        if self.reconnect_max_s < self.reconnect_s:
            raise ValueError("reconnect_max_s must be >= reconnect_s")


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the camera actually delivers after `CameraSource.open`."""

    width: int
    height: int
    fps: float | None


@dataclass(frozen=True, slots=True)
class _Captured:
    image: npt.NDArray[np.uint8]  # as the device gave it: BGR (H, W, 3) or grey (H, W)


class CameraSource:
    """A local camera through OpenCV; see the module docstring for the threading.

    ``negotiated`` (after ``open``) is the size and rate the camera actually
    gives. Counters: ``reconnects`` (times the camera came back after being
    lost), ``replaced`` (frames the graph was too slow to take).
    """

    def __init__(self, config: CameraConfig | None = None,
                 opener: DeviceOpener | None = None) -> None:
        self.config = config or CameraConfig()
        self.name = self.config.name
        self._opener = opener or open_cv2_device
        self._slot: LatestSlot[_Captured] = LatestSlot()
        self._closing = threading.Event()
        self._device: VideoDevice | None = None
        self._thread: threading.Thread | None = None
        self._last_number = 0
        self._start_ns = 0
        self._resize_warned = False
        self._lost_ns = 0
        self.negotiated: Negotiated | None = None
        self.reconnects = 0

    @property
    def replaced(self) -> int:
        return self._slot.replaced

    # ---- Source protocol ----------------------------------------------------
    def open(self) -> SourceInfo:
        device = self._open_device()
        first = self._first_frame(device)
        self.negotiated = self._negotiated(device, first)
        self._log_negotiation(self.negotiated)
        self._device = device
        self._start_ns = time.monotonic_ns()
        self._slot.put(_Captured(first), self._start_ns)
        self._thread = threading.Thread(target=self._capture_loop,
                                         name=f"vicocam-{self.name}-capture", daemon=True)
        self._thread.start()
        n = self.negotiated
        rate = as_fraction(n.fps) if n.fps else None
        return SourceInfo(n.width, n.height, rate, self_paced=True)

    def read(self) -> SourceFrame | None:
        waited = 0.0
        last_log = 0.0
        while True:
            got = self._slot.wait_newer(self._last_number, self.config.read_timeout_s)
            if got is not None:
                self._last_number = got.number
                return self._to_source_frame(got.item, got.put_ns)
            if self._slot.closed:
                return None
            waited += self.config.read_timeout_s
            if last_log == 0.0 or waited - last_log >= _WAIT_LOG_EVERY_S:
                last_log = waited
                log.warning("%s: no frame for %.0f s; waiting for the camera (unplugged? it "
                            "will be picked up again when it comes back)", self.name, waited)

    def close(self) -> None:
        self._closing.set()
        self._slot.close()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            # A device read may block up to the backend's timeout; do not hang forever.
            thread.join(timeout=max(5.0, 2 * self.config.read_timeout_s))
        device, self._device = self._device, None
        if device is not None:
            _release(device)

    # ---- opening and negotiation ---------------------------------------------
    def _open_device(self) -> VideoDevice:
        request = DeviceRequest(self.config.device, self.config.backend)
        try:
            device = self._opener(request)
        except ValueError as exc:
            raise CameraError(str(exc)) from exc
        if not device.isOpened():
            _release(device)
            raise CameraError(diagnose_open_failure(self.config.device))
        self._request_mode(device)
        return device

    def _request_mode(self, device: VideoDevice) -> None:
        c = self.config
        # Size and rate only stick after the pixel format is set (V4L2).
        if c.fourcc is not None:
            device.set(cv2.CAP_PROP_FOURCC, float(cv2.VideoWriter.fourcc(*c.fourcc)))
        if c.width is not None and c.height is not None:
            device.set(cv2.CAP_PROP_FRAME_WIDTH, float(c.width))
            device.set(cv2.CAP_PROP_FRAME_HEIGHT, float(c.height))
        if c.fps is not None:
            device.set(cv2.CAP_PROP_FPS, float(c.fps))
        # Keep the driver's own queue short: a stale frame is latency.
        device.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
        device.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, 1000.0 * c.read_timeout_s)

    def _first_frame(self, device: VideoDevice) -> npt.NDArray[np.uint8]:
        for _ in range(self.config.lost_after_failures):
            ok, image = device.read()
            if ok and image is not None:
                return image
        _release(device)
        raise CameraError(
            f"camera {self.config.device!r} opened but gave no picture; it may be in use by "
            "another program, or the requested mode is unsupported: try another "
            "--camera-size/--camera-fps or 'vicocam devices'"
        )

    def _negotiated(self, device: VideoDevice, first: npt.NDArray[np.uint8]) -> Negotiated:
        # The first frame's shape is authoritative; some backends report stale properties.
        height, width = first.shape[:2]
        fps = float(device.get(cv2.CAP_PROP_FPS) or 0.0)
        return Negotiated(width, height, fps if fps > 0 else self.config.fps)

    def _log_negotiation(self, got: Negotiated) -> None:
        c = self.config
        asked = f"{c.width}x{c.height}@{c.fps}" if c.width else f"default size@{c.fps}"
        gave = f"{got.width}x{got.height}@{got.fps}"
        size_differs = c.width is not None and (c.width, c.height) != (got.width, got.height)
        fps_differs = c.fps is not None and got.fps is not None and abs(got.fps - c.fps) > 0.5
        level = logging.WARNING if size_differs or fps_differs else logging.INFO
        log.log(level, "%s %r: asked %s, the camera gives %s", self.name, c.device, asked, gave)

    # ---- the capture thread ---------------------------------------------------
    def _capture_loop(self) -> None:
        failures = 0
        while not self._closing.is_set():
            device = self._device
            if device is None:
                device = self._reconnect()
                if device is None:
                    return
                self._device, failures = device, 0
            ok, image = _safe_read(device)
            if ok and image is not None:
                failures = 0
                self._slot.put(_Captured(image), time.monotonic_ns())
                continue
            failures += 1
            if failures >= self.config.lost_after_failures or not device.isOpened():
                self._lose(device)
            else:
                self._closing.wait(0.01)  # a timeout or a hiccup: do not spin

    def _lose(self, device: VideoDevice) -> None:
        log.warning("%s %r: camera lost (no frames: unplugged or taken by another program); "
                    "trying to reopen it every %g s", self.name, self.config.device,
                    self.config.reconnect_max_s)
        self._lost_ns = time.monotonic_ns()
        self._device = None
        _release(device)

    def _reconnect(self) -> VideoDevice | None:
        """Reopen the device (`reconnect_delays`); ``None`` once the source is closing."""
        for delay in reconnect_delays(self.config.reconnect_s, self.config.reconnect_max_s):
            if self._closing.wait(delay):
                return None
            device = self._try_reopen()
            if device is not None:
                self.reconnects += 1
                log.warning("%s %r: camera back after %.1f s", self.name, self.config.device,
                            (time.monotonic_ns() - self._lost_ns) / 1e9)
                return device
        return None  # not reached: the delays never end

    def _try_reopen(self) -> VideoDevice | None:
        try:
            device = self._opener(DeviceRequest(self.config.device, self.config.backend))
        except Exception as exc:
            log.debug("%s: reopen failed: %s", self.name, exc)
            return None
        if not device.isOpened():
            _release(device)
            return None
        self._request_mode(device)
        return device

    # ---- frames out -----------------------------------------------------------
    def _to_source_frame(self, captured: _Captured, capture_ns: int) -> SourceFrame:
        image = self._to_rgb(captured.image)
        pts = round((capture_ns - self._start_ns) / 1e9 / DEFAULT_TIME_BASE)
        return SourceFrame(image, pts=max(pts, 0), time_base=DEFAULT_TIME_BASE,
                           capture_ns=capture_ns)

    def _to_rgb(self, raw: npt.NDArray[np.uint8]) -> Image:
        code = cv2.COLOR_GRAY2RGB if raw.ndim == 2 else cv2.COLOR_BGR2RGB
        image = np.asarray(cv2.cvtColor(raw, code), dtype=np.uint8)
        n = self.negotiated
        if n is not None and image.shape[:2] != (n.height, n.width):
            # A camera that came back in another mode: keep the stream's size.
            if not self._resize_warned:
                self._resize_warned = True
                log.warning("%s: the camera now gives %dx%d; resizing to %dx%d", self.name,
                            image.shape[1], image.shape[0], n.width, n.height)
            image = np.asarray(cv2.resize(image, (n.width, n.height)), dtype=np.uint8)
        return image


def reconnect_delays(first_s: float, longest_s: float) -> Iterator[float]:
    """Waits before each reopen attempt: ``first_s``, doubling, then ``longest_s`` forever."""
    delay = first_s
    while True:
        yield delay
        delay = min(2 * delay, longest_s)


def _safe_read(device: VideoDevice) -> tuple[bool, npt.NDArray[np.uint8] | None]:
    try:
        return device.read()
    except Exception as exc:  # some backends raise when the device vanishes
        log.debug("camera read raised %s", exc)
        return False, None


def _release(device: VideoDevice) -> None:
    try:
        device.release()
    except Exception:
        log.debug("camera release failed", exc_info=True)

