"""Live settings of the avatar path: one frozen dataclass swapped whole in a `SettingsBox`.

The terminal keys of ``vicocam run`` and the WebRTC page write the same
object; the graph reads one snapshot per frame (`AvatarStage` stores it on
the frame), so every stage of a frame sees the same settings and a change
takes effect on the next frame the head stage admits. Settings never travel
through a data edge: a dropped frame drops only its snapshot, the next frame
takes a fresh one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from networks.motion import MotionMode
from pipeline.control import SettingsBox
from pipeline.frame import Image
from stages.reenact.output_mode import OutputMode

MIN_STRENGTH = 0.0
MAX_STRENGTH = 2.0
STRENGTH_STEP = 0.1


@dataclass(frozen=True, slots=True)
class AvatarKey:
    """Which avatar to show: a portrait reference and a version.

    ``source`` is what the portrait loader understands (a picture path, or
    ``person:N`` for a held-out synthetic person). ``version`` distinguishes
    two pictures behind the same reference (a file replaced by an upload):
    bumping it forces the avatar to be prepared again. ``image``, when set,
    is the portrait itself (``(H, W, 3)`` uint8 RGB, e.g. a WebRTC upload)
    and ``source`` only names it (use the upload's digest, so the same
    picture is recognised); it takes no part in comparisons.
    """

    source: str
    version: int = 0
    image: Image | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """The knobs a user turns while the avatar runs.

    Attributes:
        avatar: the avatar to show; ``None`` keeps whatever is prepared.
        mode: how driver motion is composed (`networks.motion.MotionMode`);
            ``None`` = the model family's default (cross-subject for
            ViCoFace, relative for LIA).
        strength: scale of the motion delta, ``MIN_STRENGTH`` to
            ``MAX_STRENGTH`` (1 = as driven, 0 = the avatar at rest).
        output: what the compositor writes (`OutputMode`).
        reset_count: a counter, not a flag: every increase asks the
            generation stage to take the next driver frame as the new
            relative-mode reference. A counter cannot be "missed" by a frame
            that is dropped, and it needs no one to clear it.
    """

    avatar: AvatarKey | None = None
    mode: MotionMode | None = None
    strength: float = 1.0
    output: OutputMode = OutputMode.SIDE_BY_SIDE
    reset_count: int = 0

    def __post_init__(self) -> None:
        if not MIN_STRENGTH <= self.strength <= MAX_STRENGTH:
            raise ValueError(
                f"strength must be within {MIN_STRENGTH}-{MAX_STRENGTH}, got {self.strength}"
            )
        if self.reset_count < 0:
            raise ValueError(f"reset_count must be >= 0, got {self.reset_count}")


LiveSettingsBox = SettingsBox[LiveSettings]

_MODE_CYCLE: tuple[MotionMode, ...] = (MotionMode.CROSS, MotionMode.RELATIVE, MotionMode.ABSOLUTE)
_OUTPUT_CYCLE: tuple[OutputMode, ...] = tuple(OutputMode)


def reset_reference(box: LiveSettingsBox) -> LiveSettings:
    """Ask for a new relative-mode reference on the next frame."""
    return box.update(reset_count=box.get().reset_count + 1)


def change_strength(box: LiveSettingsBox, delta: float) -> LiveSettings:
    """Add ``delta`` to the strength, clamped to the allowed range."""
    value = min(MAX_STRENGTH, max(MIN_STRENGTH, box.get().strength + delta))
    return box.update(strength=round(value, 3))


def next_mode(box: LiveSettingsBox, family_default: MotionMode) -> LiveSettings:
    """Cycle cross -> relative -> absolute, starting from the effective mode."""
    current = box.get().mode or family_default
    index = _MODE_CYCLE.index(current) if current in _MODE_CYCLE else -1
    return box.update(mode=_MODE_CYCLE[(index + 1) % len(_MODE_CYCLE)])


def next_output(box: LiveSettingsBox) -> LiveSettings:
    """Cycle crop -> paste -> side by side."""
    index = _OUTPUT_CYCLE.index(box.get().output)
    return box.update(output=_OUTPUT_CYCLE[(index + 1) % len(_OUTPUT_CYCLE)])


def next_avatar(box: LiveSettingsBox, avatars: Sequence[AvatarKey]) -> LiveSettings:
    """Show the avatar after the current one in ``avatars`` (wraps around)."""
    if not avatars:
        return box.get()
    current = box.get().avatar
    index = avatars.index(current) if current in avatars else -1
    return box.update(avatar=avatars[(index + 1) % len(avatars)])
