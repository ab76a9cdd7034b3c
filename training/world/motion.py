"""How a person moves: the attributes reenactment must transfer.

A `Motion` is one instant (head pose, framing, expression); a `MotionClip`
is a smooth trajectory of motions sampled by `sample_clip`: low-frequency
sinusoids for the head, short raised-cosine events for blinks, syllable
bumps grouped into phrases for speech, slow swells for smiles and brows.

Conventions (image axes: x right, y down):
    yaw   > 0 turns the face towards the image right (the nose moves right);
    pitch > 0 raises the chin (the nose moves up);
    roll  > 0 tilts the head clockwise in the image;
    ``left``/``right`` in blink names are image sides, not the subject's.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np
import numpy.typing as npt

from training.world._rng import MOTION_STREAM, rng

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Motion:
    """One instant of head pose and expression.

    Attributes:
        yaw, pitch, roll: head rotation in degrees (see the module docstring).
        tx, ty: head translation in frame widths / heights (+ is right / down).
        scale: head scale about the neck, 1 is neutral.
        mouth_open: 0 closed to 1 wide open (the jaw drops with it).
        smile: -1 corners down, 0 neutral, 1 broad smile.
        blink_left, blink_right: 0 open to 1 closed, eye on the image left/right.
        brow_raise: -1 frown (brows down and together), 0 neutral, 1 raised.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    scale: float = 1.0
    mouth_open: float = 0.0
    smile: float = 0.0
    blink_left: float = 0.0
    blink_right: float = 0.0
    brow_raise: float = 0.0

    def to_array(self) -> FloatArray:
        """``(len(MOTION_FIELDS),)`` float32, in `MOTION_FIELDS` order."""
        return np.asarray(astuple(self), dtype=np.float32)

    @classmethod
    def from_array(cls, values: npt.ArrayLike) -> Motion:
        """Inverse of `to_array`."""
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
        if flat.shape != (len(MOTION_FIELDS),):
            raise ValueError(
                f"a motion has {len(MOTION_FIELDS)} values {MOTION_FIELDS}, got shape {flat.shape}"
            )
        return cls(*(float(v) for v in flat))


MOTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Motion))

MOTION_RANGES: dict[str, tuple[float, float]] = {
    "yaw": (-35.0, 35.0),
    "pitch": (-20.0, 20.0),
    "roll": (-15.0, 15.0),
    "tx": (-0.06, 0.06),
    "ty": (-0.05, 0.05),
    "scale": (0.9, 1.1),
    "mouth_open": (0.0, 1.0),
    "smile": (-1.0, 1.0),
    "blink_left": (0.0, 1.0),
    "blink_right": (0.0, 1.0),
    "brow_raise": (-1.0, 1.0),
}
"""The range `sample_clip` keeps every channel in; the renderer accepts any value."""


@dataclass(frozen=True, eq=False)
class MotionClip:
    """A motion trajectory: ``values`` is ``(frames, len(MOTION_FIELDS))`` float32."""

    values: FloatArray
    fps: float

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(MOTION_FIELDS):
            raise ValueError(
                f"values must be (frames, {len(MOTION_FIELDS)}), got {self.values.shape}"
            )

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, t: int) -> Motion:
        return Motion.from_array(self.values[t])

    def channel(self, name: str) -> FloatArray:
        """One channel over time, ``(frames,)``."""
        return self.values[:, MOTION_FIELDS.index(name)]


@dataclass(frozen=True)
class MotionConfig:
    """Statistics of sampled clips.

    Attributes:
        pose_amplitude: peak excursion of each pose channel around the clip's
            rest pose, in the channel's units.
        rest_pose: half-range of the per-clip rest pose offset.
        pose_hz: frequency range of the pose sinusoids.
        blink_rate_hz: mean blinks per second; ``wink_probability`` of them
            close one eye only.
        syllable_hz: syllable rate while speaking; ``speech_fraction`` is the
            share of time spent in phrases rather than pauses.
    """

    pose_amplitude: tuple[tuple[str, float], ...] = (
        ("yaw", 28.0),
        ("pitch", 13.0),
        ("roll", 9.0),
        ("tx", 0.035),
        ("ty", 0.025),
        ("scale", 0.06),
    )
    rest_pose: tuple[tuple[str, float], ...] = (
        ("yaw", 12.0),
        ("pitch", 6.0),
        ("roll", 5.0),
        ("tx", 0.025),
        ("ty", 0.02),
        ("scale", 0.04),
    )
    pose_hz: tuple[float, float] = (0.1, 0.7)
    blink_rate_hz: float = 0.35
    wink_probability: float = 0.1
    syllable_hz: float = 4.0
    speech_fraction: float = 0.65


def sample_clip(
    seed: int, frames: int, fps: float = 25.0, config: MotionConfig | None = None
) -> MotionClip:
    """A smooth, deterministic ``frames``-long trajectory at ``fps``."""
    if frames < 1 or fps <= 0:
        raise ValueError(f"need frames >= 1 and fps > 0, got frames={frames}, fps={fps}")
    cfg = config or MotionConfig()
    g = rng(MOTION_STREAM, seed)
    t = np.arange(frames, dtype=np.float64) / fps
    out = np.zeros((frames, len(MOTION_FIELDS)), dtype=np.float64)
    for name, value in _pose_channels(g, t, cfg).items():
        out[:, MOTION_FIELDS.index(name)] = value
    left, right = _blinks(g, t, cfg)
    out[:, MOTION_FIELDS.index("blink_left")] = left
    out[:, MOTION_FIELDS.index("blink_right")] = right
    mouth = _speech(g, t, cfg)
    out[:, MOTION_FIELDS.index("mouth_open")] = mouth
    out[:, MOTION_FIELDS.index("smile")] = _smile(g, t)
    out[:, MOTION_FIELDS.index("brow_raise")] = _brows(g, t, mouth)
    for i, name in enumerate(MOTION_FIELDS):
        out[:, i] = np.clip(out[:, i], *MOTION_RANGES[name])
    return MotionClip(values=out.astype(np.float32), fps=float(fps))


def _smooth_wave(
    g: np.random.Generator, t: np.ndarray, hz: tuple[float, float], components: int = 3
) -> np.ndarray:
    """A sum of sinusoids with peak magnitude at most 1."""
    freqs = np.exp(g.uniform(np.log(hz[0]), np.log(hz[1]), components))
    phases = g.uniform(0, 2 * np.pi, components)
    weights = g.uniform(0.2, 1.0, components)
    weights /= weights.sum()
    return np.sum(weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]), 0)


def _pose_channels(
    g: np.random.Generator, t: np.ndarray, cfg: MotionConfig
) -> dict[str, np.ndarray]:
    rest = dict(cfg.rest_pose)
    neutral = {"scale": 1.0}
    channels = {}
    for name, amplitude in cfg.pose_amplitude:
        offset = neutral.get(name, 0.0) + g.uniform(-1, 1) * rest.get(name, 0.0)
        channels[name] = offset + amplitude * g.uniform(0.3, 1.0) * _smooth_wave(g, t, cfg.pose_hz)
    return channels


def _bump(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A raised cosine of height 1 and full width ``width`` at ``centre``."""
    phase = np.clip((t - centre) / width, -0.5, 0.5)
    return 0.5 + 0.5 * np.cos(2 * np.pi * phase)


def _event_times(g: np.random.Generator, duration: float, rate: float, gap: float) -> np.ndarray:
    """Poisson-like event times with a minimum spacing, from a little before 0."""
    count = int(duration * rate * 2 + 4)
    steps = gap + g.exponential(1.0 / rate, count)
    times = -g.uniform(0, 1.0 / rate) + np.cumsum(steps)
    return times[times < duration + gap]


def _blinks(g: np.random.Generator, t: np.ndarray, cfg: MotionConfig) -> tuple[np.ndarray, ...]:
    duration = float(t[-1]) + 1.0 / max(len(t), 1)
    left = np.full_like(t, g.uniform(0.0, 0.12))  # resting squint
    right = left.copy()
    for centre in _event_times(g, duration, cfg.blink_rate_hz, 0.6):
        shape = _bump(t, centre, g.uniform(0.18, 0.34))
        eyes = g.uniform()
        if eyes >= cfg.wink_probability:
            left, right = np.maximum(left, shape), np.maximum(right, shape)
        elif eyes < cfg.wink_probability / 2:
            left = np.maximum(left, shape)
        else:
            right = np.maximum(right, shape)
    return left, right


def _speech(g: np.random.Generator, t: np.ndarray, cfg: MotionConfig) -> np.ndarray:
    """Syllable bumps inside phrases separated by pauses."""
    duration = float(t[-1]) + 0.5
    mouth = np.zeros_like(t)
    clock = -g.uniform(0.0, 1.5)
    while clock < duration:
        speaking = g.uniform() < cfg.speech_fraction
        length = g.uniform(0.8, 3.0) if speaking else g.uniform(0.3, 1.4)
        if speaking:
            loudness = g.uniform(0.4, 1.0)
            syllable = clock
            while syllable < clock + length:
                bump = _bump(t, syllable, g.uniform(0.14, 0.3))
                mouth = np.maximum(mouth, loudness * g.uniform(0.3, 1.0) * bump)
                syllable += g.uniform(0.7, 1.3) / cfg.syllable_hz
        clock += length
    return mouth


def _smile(g: np.random.Generator, t: np.ndarray) -> np.ndarray:
    smile = g.uniform(-0.2, 0.4) + 0.25 * _smooth_wave(g, t, (0.03, 0.25), 2)
    for centre in _event_times(g, float(t[-1]) + 1.0, 0.12, 1.5):
        smile = smile + g.uniform(0.3, 0.8) * _bump(t, centre, g.uniform(1.0, 3.0))
    return smile


def _brows(g: np.random.Generator, t: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    # Brows rise with emphasis while speaking, plus slow drift and rare frowns.
    brows = g.uniform(-0.15, 0.15) + 0.25 * _smooth_wave(g, t, (0.05, 0.4), 2)
    brows = brows + g.uniform(0.0, 0.5) * mouth
    for centre in _event_times(g, float(t[-1]) + 1.0, 0.1, 1.5):
        sign = 1.0 if g.uniform() < 0.7 else -1.0
        brows = brows + sign * g.uniform(0.3, 0.8) * _bump(t, centre, g.uniform(0.6, 1.6))
    return brows
