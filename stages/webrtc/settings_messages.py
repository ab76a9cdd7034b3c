"""The page's settings messages: one rule set for the HTTP routes and the control channel.

`settings_changes` reads what a settings request asks for (the body of
``POST /api/sessions/{id}/settings`` and the ``settings`` of a control
channel message are the same object) and `settings_reply` reports a
session's settings as the page shows them. `AvatarNames` remembers the name
a session's avatar was chosen by (a preset's file name, an upload's), so
the reply names the avatar in use, not its digest.
"""

from __future__ import annotations

import enum
from typing import Any

from networks.motion import MotionMode
from stages.reenact.live_settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode

SETTINGS_FIELDS = frozenset({"strength", "reset", "mode", "output"})


def settings_changes(body: Any, current: LiveSettings) -> dict[str, Any]:
    """The `LiveSettings` fields a page's settings request changes; `ValueError` if invalid."""
    if not isinstance(body, dict) or not set(body) <= SETTINGS_FIELDS:
        raise ValueError('send any of {"strength": number, "reset": true, '
                         '"mode": name or null, "output": name}')
    changes: dict[str, Any] = {}
    if "strength" in body:
        strength = body["strength"]
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            raise ValueError("strength must be a number")
        changes["strength"] = float(strength)
    if body.get("reset") is True:
        changes["reset_count"] = current.reset_count + 1
    if "mode" in body:
        mode = body["mode"]
        changes["mode"] = None if mode is None else MotionMode(_choice(MotionMode, mode))
    if "output" in body:
        changes["output"] = OutputMode(_choice(OutputMode, body["output"]))
    return changes


def _choice(kind: type[enum.StrEnum], value: Any) -> str:
    """``value`` when it names a member of ``kind`` (then ``kind(value)`` is that member)."""
    names = [str(member) for member in kind]
    if not isinstance(value, str) or value not in names:
        raise ValueError(f"{value!r} is not one of {names}")
    return value


class AvatarNames:
    """The name the avatar a session last chose goes by.

    A preset or an upload becomes an `AvatarKey` named by the digest of its
    bytes; the page should say ``mona.png``, not ``upload:3f2a...``. Only the
    latest choice is kept: an avatar that was not chosen by name (the
    server's own) goes by its source.
    """

    def __init__(self) -> None:
        self._source: str | None = None
        self._name: str | None = None

    def remember(self, avatar: AvatarKey | None, name: str | None) -> None:
        self._source = avatar.source if avatar is not None else None
        self._name = name

    def name(self, avatar: AvatarKey | None) -> str | None:
        """What to call ``avatar`` (``None`` = no avatar chosen: whatever is prepared)."""
        if avatar is None:
            return None
        if avatar.source == self._source and self._name:
            return self._name
        return avatar.source


def use_avatar(box: LiveSettingsBox, names: AvatarNames, name: str | None,
               avatar: AvatarKey | None) -> LiveSettings:
    """Make ``avatar`` (chosen as ``name``) the session's; its new settings."""
    names.remember(avatar, name)
    return box.update(avatar=avatar)


def settings_reply(settings: LiveSettings, names: AvatarNames | None = None) -> dict[str, Any]:
    """The settings as the page shows them (``mode`` ``None`` = the model's default).

    ``avatar`` is the name the avatar in use was chosen by when ``names``
    knows it, else its source (e.g. ``person:1`` for the server's own).
    """
    avatar = settings.avatar
    return {
        "avatar": names.name(avatar) if names else (avatar.source if avatar else None),
        "strength": settings.strength,
        "reset_count": settings.reset_count,
        "mode": settings.mode.value if settings.mode else None,
        "output": settings.output.value,
    }
