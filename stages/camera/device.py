"""The small device interface behind `CameraSource`, its OpenCV implementation,
error diagnosis and camera listing.

`CameraSource` never touches ``cv2.VideoCapture`` directly: it calls a
`DeviceOpener`, which returns anything with the few calls it uses
(`VideoDevice`). Tests inject a fake device that can be "unplugged" and
"plugged back"; the real opener picks the OpenCV capture backend of the
platform (V4L2 on Linux, AVFoundation on macOS, Media Foundation or
DirectShow on Windows).
"""

from __future__ import annotations

import logging
import os
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

CAPTURE_BACKENDS = MappingProxyType(
    {"any": "CAP_ANY", "v4l2": "CAP_V4L2", "avfoundation": "CAP_AVFOUNDATION",
     "dshow": "CAP_DSHOW", "msmf": "CAP_MSMF"}
)
"""Names accepted for `CameraConfig.backend` (besides ``"auto"``) -> OpenCV constant."""


class VideoDevice(Protocol):
    """The part of ``cv2.VideoCapture`` the camera source uses.

    ``read()`` returns ``(ok, image)``: a BGR ``(H, W, 3)`` (or grey
    ``(H, W)``) uint8 array when ``ok``; ``(False, None)`` when no frame
    came (a timeout, or the device is gone).
    """

    def isOpened(self) -> bool: ...  # noqa: N802 (cv2.VideoCapture's name)

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]: ...

    def release(self) -> None: ...

    def set(self, prop: int, value: float) -> bool: ...

    def get(self, prop: int) -> float: ...


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """What to open: a device index or path and the capture backend's name."""

    device: int | str
    backend: str = "auto"


DeviceOpener = Callable[[DeviceRequest], VideoDevice]
"""Opens a device; returns it even when not opened (the caller checks ``isOpened``)."""


def default_backend(system: str | None = None) -> str:
    """The capture backend to use on ``system`` (``platform.system()`` by default)."""
    system = system or platform.system()
    return {"Linux": "v4l2", "Darwin": "avfoundation", "Windows": "msmf"}.get(system, "any")


def open_cv2_device(request: DeviceRequest) -> VideoDevice:
    """Open a camera through OpenCV with the platform's backend (the real `DeviceOpener`)."""
    import cv2

    name = default_backend() if request.backend == "auto" else request.backend
    if name not in CAPTURE_BACKENDS:
        raise ValueError(f"unknown camera backend {name!r}; use auto or one of "
                         f"{', '.join(CAPTURE_BACKENDS)}")
    if name == "v4l2" and not linux_device_path(request.device).exists():
        # An unplugged camera is retried every fraction of a second; OpenCV would
        # print three warnings per attempt for a device node that is not there.
        return _AbsentDevice()
    api = int(getattr(cv2, CAPTURE_BACKENDS[name]))
    return _Cv2Device(cv2.VideoCapture(request.device, api))


class _AbsentDevice:
    """A V4L2 device whose node does not exist: never opened, nothing to release."""

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return False

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        return False, None

    def release(self) -> None:
        return None

    def set(self, prop: int, value: float) -> bool:
        return False

    def get(self, prop: int) -> float:
        return 0.0


class _Cv2Device:
    """``cv2.VideoCapture`` with `VideoDevice`'s types (uint8 arrays, ``None`` on failure)."""

    def __init__(self, capture: Any) -> None:
        self._capture = capture

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return bool(self._capture.isOpened())

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        ok, image = self._capture.read()
        if not ok or image is None:
            return False, None
        return True, np.asarray(image, dtype=np.uint8)

    def release(self) -> None:
        self._capture.release()

    def set(self, prop: int, value: float) -> bool:
        return bool(self._capture.set(prop, value))

    def get(self, prop: int) -> float:
        return float(self._capture.get(prop))


def linux_device_path(device: int | str) -> Path:
    """``/dev/videoN`` for an index, else the path given."""
    return Path(f"/dev/video{device}") if isinstance(device, int) else Path(device)


def explain_open_failure(device: int | str, system: str, *, exists: bool | None,
                         accessible: bool | None) -> str:
    """A message for a camera that would not open, saying what to do.

    ``exists``/``accessible`` describe the device node on Linux (``None``
    where the platform has no such node).
    """
    label = f"camera {device!r}"
    listing = "run 'vicocam devices' to list the cameras found"
    if system == "Linux":
        path = linux_device_path(device)
        if exists is False:
            return f"{label} not found: {path} does not exist; {listing}"
        if accessible is False:
            return (f"no permission to open {path}: add your user to the 'video' group "
                    "(sudo usermod -aG video $USER, then log out and in) or run with access "
                    "to the device")
        return (f"{label} ({path}) exists but did not open: it is probably in use by another "
                "program (a video call, OBS, a browser tab); close that program and retry")
    if system == "Darwin":
        return (f"{label} did not open: allow camera access for this terminal in System "
                "Settings > Privacy & Security > Camera, close other apps using the camera, "
                f"and check it is connected; {listing}")
    if system == "Windows":
        return (f"{label} did not open: check Settings > Privacy & security > Camera allows "
                "desktop apps, close apps that may hold the camera (Teams, Zoom, the Camera "
                f"app), or try --camera-backend dshow; {listing}")
    return f"{label} did not open; check it is connected and not in use; {listing}"


def diagnose_open_failure(device: int | str) -> str:
    """`explain_open_failure` for this machine, checking the Linux device node."""
    system = platform.system()
    exists = accessible = None
    if system == "Linux":
        path = linux_device_path(device)
        exists = path.exists()
        accessible = os.access(path, os.R_OK | os.W_OK) if exists else None
    return explain_open_failure(device, system, exists=exists, accessible=accessible)


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """One camera `list_cameras` found.

    Attributes:
        device: what to pass as ``--camera`` (an index).
        name: the driver's name for it (``"?"`` when unknown).
        path: the device node on Linux, else ``None``.
        virtual: a virtual camera (v4l2loopback), i.e. possibly our own output.
    """

    device: int
    name: str
    path: str | None = None
    virtual: bool = False


_VIDEO_NODE = re.compile(r"^video(\d+)$")


def list_linux_cameras(sysfs: Path = Path("/sys/class/video4linux")) -> list[CameraInfo]:
    """Capture nodes from sysfs, without opening any device.

    UVC cameras expose a second (metadata) node per camera, with ``index``
    1; only nodes with index 0 are listed.
    """
    if not sysfs.is_dir():
        return []
    found = []
    for entry in sysfs.iterdir():
        match = _VIDEO_NODE.match(entry.name)
        if match is None or _read_text(entry / "index", "0") != "0":
            continue
        virtual = "/virtual/" in str(entry.resolve())
        found.append(CameraInfo(int(match.group(1)), _read_text(entry / "name", "?"),
                                f"/dev/{entry.name}", virtual))
    return sorted(found, key=lambda c: c.device)


def probe_cameras(opener: DeviceOpener, max_index: int = 8) -> list[CameraInfo]:
    """Cameras found by trying to open indices ``0..max_index-1`` (macOS, Windows)."""
    found = []
    for index in range(max_index):
        try:
            device = opener(DeviceRequest(index))
        except Exception as exc:
            log.debug("camera %d: %s", index, exc)
            continue
        try:
            if device.isOpened():
                found.append(CameraInfo(index, f"camera {index}"))
        finally:
            device.release()
    return found


def list_cameras(opener: DeviceOpener | None = None) -> list[CameraInfo]:
    """The cameras of this machine (Linux: from sysfs; elsewhere: by probing)."""
    if platform.system() == "Linux":
        return list_linux_cameras()
    return probe_cameras(opener or open_cv2_device)


def _read_text(path: Path, default: str) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default
