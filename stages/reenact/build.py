"""Build the avatar path's stage list: what ``vicocam run`` and each WebRTC session use.

`build_avatar_stages` returns ``[face, avatar, motion, generate, composite]``
for a `SettingsBox` of `LiveSettings` and a `ModelBundle`; the caller adds
its source in front and its sink at the end. Every call builds new stages
(each with its own tracker, reference frame, avatar library and streams),
so two sessions never share per-stream state; they may share the bundle
when its engines are safe to call from several threads (Torch and ONNX
Runtime engines are; give each session its own TensorRT engines).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from pipeline.stage import Stage
from stages.face.detector import FaceDetector
from stages.face.stage import FaceTrackStage
from stages.face.tracker import FaceTrackerConfig
from stages.reenact.avatar import AvatarConfig, AvatarPreparer, PortraitLoader, PreparedAvatar
from stages.reenact.live_settings import AvatarKey, LiveSettingsBox
from stages.reenact.stages import (
    AvatarStage,
    CompositeConfig,
    CompositeStage,
    DriverMotionStage,
    GenerateStage,
)
from trt_engines.bundle import ModelBundle
from trt_engines.streams import make_stream


@dataclass(frozen=True, slots=True)
class AvatarPathConfig:
    """Settings of the avatar path that do not change while it runs.

    Attributes:
        tracker: the face tracker (its crop size is set to the model's).
        avatar: how portraits are prepared.
        composite: output layout.
        crop_on_device: cut the driver crop on the compute device from the
            uploaded picture (``None``: only when that device is not the CPU,
            where the tracker's own crop is free).
    """

    tracker: FaceTrackerConfig = field(default_factory=FaceTrackerConfig)
    avatar: AvatarConfig = field(default_factory=AvatarConfig)
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    crop_on_device: bool | None = None


def tracker_for(bundle: ModelBundle, config: FaceTrackerConfig) -> FaceTrackerConfig:
    """``config`` with the crop cut at the model's size and ViCoFace's scale."""
    return replace(config, crop=replace(config.crop, size=bundle.size))


def build_avatar_stages(
    settings: LiveSettingsBox,
    bundle: ModelBundle,
    config: AvatarPathConfig | None = None,
    *,
    loaders: Mapping[str, PortraitLoader] | None = None,
    initial: AvatarKey | None = None,
    preparer: Callable[[AvatarKey], PreparedAvatar] | None = None,
    detector: FaceDetector | None = None,
) -> list[Stage]:
    """The avatar path's stages, in graph order (see the module docstring).

    Args:
        settings: the live settings this path follows (terminal keys or a
            WebRTC page write it).
        bundle: the model and its two engines.
        config: fixed settings of the path.
        loaders: extra portrait loaders by name (``person`` ...).
        initial: the avatar to start with when the settings name none.
        preparer: prepares avatars (e.g. one shared by several sessions, see
            `stages.reenact.shared_sessions`); ``None`` = a new `AvatarPreparer`
            (then ``loaders`` apply to portraits too).
        detector: the face detector to track with (e.g. one shared by
            several sessions: it is read-only once loaded); ``None`` = the
            tracker builds its own from ``config.tracker.detector``.
    """
    config = config or AvatarPathConfig()
    device = bundle.device
    crop_on_device = config.crop_on_device
    if crop_on_device is None:
        crop_on_device = device.type != "cpu"
    if preparer is None:
        preparer = AvatarPreparer(bundle.reenactor, device, config.avatar, loaders)
    return [
        FaceTrackStage(tracker_for(bundle, config.tracker), detector),
        AvatarStage(settings, preparer, initial),
        DriverMotionStage(bundle.motion, make_stream(device), crop_on_device),
        GenerateStage(bundle.generate, make_stream(device), bundle.config.family),
        CompositeStage(make_stream(device), config.composite),
    ]

