"""Local cameras through OpenCV: `CameraSource` (a self-paced source that
survives unplugging) and `list_cameras` for ``vicocam devices``.

Importing this package opens nothing; devices are opened by
`CameraSource.open` in the runtime's source thread.
"""

from stages.camera.device import (
    CAPTURE_BACKENDS,
    CameraInfo,
    DeviceOpener,
    DeviceRequest,
    VideoDevice,
    list_cameras,
    open_cv2_device,
)
from stages.camera.source import CameraConfig, CameraError, CameraSource, Negotiated

__all__ = [
    "CAPTURE_BACKENDS",
    "CameraConfig",
    "CameraError",
    "CameraInfo",
    "CameraSource",
    "DeviceOpener",
    "DeviceRequest",
    "Negotiated",
    "VideoDevice",
    "list_cameras",
    "open_cv2_device",
]
