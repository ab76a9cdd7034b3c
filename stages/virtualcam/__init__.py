"""The avatar as a virtual camera (v4l2loopback, OBS, Unity Capture): `VirtualCamSink`.

pyvirtualcam is imported only when the sink starts; see `stages.virtualcam.sink`
for installing a backend on each platform, and `stages.virtualcam.keepalive`
for how the camera stays alive while the source is lost.
"""

from stages.virtualcam.keepalive import KeepAliveConfig, render_card
from stages.virtualcam.sink import (
    FIT_MODES,
    MODPROBE_LINE,
    PACING_MODES,
    PLATFORM_BACKENDS,
    VirtualCamConfig,
    VirtualCamError,
    VirtualCamSink,
    available_backends,
    fit_image,
)

__all__ = [
    "FIT_MODES",
    "MODPROBE_LINE",
    "PACING_MODES",
    "PLATFORM_BACKENDS",
    "KeepAliveConfig",
    "VirtualCamConfig",
    "VirtualCamError",
    "VirtualCamSink",
    "available_backends",
    "fit_image",
    "render_card",
]
