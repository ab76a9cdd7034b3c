"""The avatar path as a per-session stage factory (what a WebRTC server calls per peer).

`session_factory(bundle)` returns ``factory(settings_box) -> list[Stage]``.
The box a server hands over may hold `LiveSettings` (used as is) or any
settings object with the fields a peer can change (`SessionLike`: ``avatar``
with ``image`` and ``sha256``, ``strength``, ``reset_count``); such a box is
mirrored into a `LiveSettings` box, whole and at once, on every change. The
mode and the output mode the peer cannot change stay as configured (paste: a
call shows the avatar, not the driver beside it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pipeline.control import SettingsBox
from pipeline.frame import Image
from pipeline.stage import Stage
from stages.reenact.avatar import PortraitLoader
from stages.reenact.build import AvatarPathConfig, build_avatar_stages
from stages.reenact.model import ModelBundle
from stages.reenact.settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode


class UploadLike(Protocol):
    """An uploaded portrait: the picture and a digest of its bytes."""

    @property
    def image(self) -> Image: ...

    @property
    def sha256(self) -> str: ...


class SessionLike(Protocol):
    """What a peer may change: ``avatar`` (``None`` = the default), strength, reset count."""

    @property
    def avatar(self) -> UploadLike | None: ...

    @property
    def strength(self) -> float: ...

    @property
    def reset_count(self) -> int: ...


def live_from_session(session: SessionLike, base: LiveSettings) -> LiveSettings:
    """``base`` with the peer's avatar, strength and reset count applied."""
    upload = session.avatar
    avatar = base.avatar if upload is None else AvatarKey(f"upload:{upload.sha256}",
                                                          image=upload.image)
    return LiveSettings(avatar=avatar, mode=base.mode, strength=session.strength,
                        output=base.output, reset_count=session.reset_count)


def session_factory(
    bundle: ModelBundle,
    default_avatar: AvatarKey,
    config: AvatarPathConfig | None = None,
    loaders: Mapping[str, PortraitLoader] | None = None,
    output: OutputMode = OutputMode.PASTE,
) -> Callable[[SettingsBox[Any]], list[Stage]]:
    """A factory building one session's avatar stages around the session's settings box."""
    base = LiveSettings(avatar=default_avatar, output=output)

    def build(box: SettingsBox[Any]) -> list[Stage]:
        return build_avatar_stages(_live_box(box, base), bundle, config, loaders=loaders)

    return build


def _live_box(box: SettingsBox[Any], base: LiveSettings) -> LiveSettingsBox:
    current = box.get()
    if isinstance(current, LiveSettings):
        live: LiveSettingsBox = box
        return live
    mirror: LiveSettingsBox = SettingsBox(live_from_session(current, base))
    box.subscribe(lambda changed: mirror.set(live_from_session(changed, mirror.get())))
    return mirror
