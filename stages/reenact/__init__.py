"""The live avatar path: reenactment stages, compositing, live settings (see README.md).

Public API:
    `build_avatar_stages` (the stage list for a settings box and a model),
    `session_factory` (the same, per WebRTC session), `LiveSettings` /
    `AvatarKey` / `OutputMode` (what users change while it runs),
    `ModelBundle` / `open_bundle` / `EngineOptions` (the model and its
    engines), `AvatarRunConfig` / `build_avatar_run` (what ``vicocam run``
    builds).
"""

from stages.reenact.app import AvatarRunConfig, build_avatar_run
from stages.reenact.build import AvatarPathConfig, build_avatar_stages
from stages.reenact.model import EngineOptions, ModelBundle, open_bundle
from stages.reenact.session import session_factory
from stages.reenact.settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode

__all__ = [
    "AvatarKey",
    "AvatarPathConfig",
    "AvatarRunConfig",
    "EngineOptions",
    "LiveSettings",
    "LiveSettingsBox",
    "ModelBundle",
    "OutputMode",
    "build_avatar_run",
    "build_avatar_stages",
    "open_bundle",
    "session_factory",
]
