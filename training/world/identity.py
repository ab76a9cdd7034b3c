"""Who is in the picture: the attributes reenactment must preserve.

An `Identity` is a frozen bundle of everything that stays fixed while a person
talks: face shape, skin, hair, eyes, brows, nose, lips, neck, torso, clothing
and the background behind them. It is sampled from an integer seed, so any
identity can be rebuilt from its seed alone.

Lengths are in *head units*: multiples of the head half-width ``rx`` (the
``FaceShape.half_width``, itself in frame widths). Colours are RGB tuples.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from training.world._rng import IDENTITY_STREAM, rng

Colour = tuple[int, int, int]


class HairStyle(StrEnum):
    """Silhouettes different enough that a model must keep them apart."""

    SHORT = "short"
    LONG = "long"
    BUN = "bun"
    BALD = "bald"
    FRINGE = "fringe"  # chin-length with bangs
    BOB = "bob"  # chin-length, open forehead
    AFRO = "afro"


class Collar(StrEnum):
    ROUND = "round"
    V_NECK = "v_neck"
    SHIRT = "shirt"
    TURTLENECK = "turtleneck"


class ClothPattern(StrEnum):
    SOLID = "solid"
    STRIPES = "stripes"
    DOTS = "dots"
    JACKET = "jacket"


class BackdropStyle(StrEnum):
    SOLID = "solid"
    VERTICAL = "vertical"
    HORIZONTAL = "horizontal"
    RADIAL = "radial"


class BackdropPattern(StrEnum):
    NONE = "none"
    STRIPES = "stripes"
    BLOBS = "blobs"
    TILES = "tiles"


@dataclass(frozen=True)
class FaceShape:
    """The head volume; see `training.world.geometry` for how it is built.

    Attributes:
        half_width: head half-width without ears, in frame widths.
        crown: height of the cranium above the eye line, in head units.
        chin: depth of the lower face below the eye line, in head units.
        depth: front-to-back radius of the head, in head units.
        jaw_exponent: superellipse exponent of the lower-face outline;
            about 1.8 gives a tapered V-jaw, 4 a square jaw.
        chin_width: half-width of the flat of the chin, in head units.
        ear_size: ear height, in head units.
    """

    half_width: float
    crown: float
    chin: float
    depth: float
    jaw_exponent: float
    chin_width: float
    ear_size: float


@dataclass(frozen=True)
class Eyes:
    """Eye geometry (head units) and colour.

    Attributes:
        spacing: horizontal offset of each eye centre from the face midline.
        width: corner-to-corner width of one eye.
        aspect: open-eye height divided by width.
        height: vertical position of the eye line (positive is down).
        tilt: how far the outer corners sit above the inner ones, in eye heights.
        iris_size: iris radius in open-eye heights.
        iris: iris colour.
    """

    spacing: float
    width: float
    aspect: float
    height: float
    tilt: float
    iris_size: float
    iris: Colour


@dataclass(frozen=True)
class Brows:
    """Brow geometry (head units) and colour; ``length`` is in eye widths."""

    thickness: float
    arch: float
    gap: float
    length: float
    colour: Colour


@dataclass(frozen=True)
class Nose:
    """Nose geometry in head units: tip height, protrusion and wing width."""

    height: float
    length: float
    width: float


@dataclass(frozen=True)
class Mouth:
    """Lip geometry in head units and lip colour."""

    height: float
    width: float
    upper_lip: float
    lower_lip: float
    colour: Colour


@dataclass(frozen=True)
class Hair:
    """Hair style and colour.

    Attributes:
        hairline: front hairline height as a fraction of the crown height.
        volume: how far the hair stands off the scalp, in head units.
        length: for long hair, where it ends, in frame heights from the top.
    """

    style: HairStyle
    colour: Colour
    hairline: float
    volume: float
    length: float


@dataclass(frozen=True)
class Body:
    """Neck, shoulders and clothing (frame units unless stated).

    Attributes:
        neck_width: neck half-width in head units.
        shoulder_y: height of the shoulder line, in frame heights.
        shoulder_span: half-distance between the shoulder points.
        shoulder_drop: how much the shoulders slope down towards the arms.
    """

    neck_width: float
    shoulder_y: float
    shoulder_span: float
    shoulder_drop: float
    cloth: Colour
    cloth_accent: Colour
    pattern: ClothPattern
    collar: Collar


@dataclass(frozen=True)
class Backdrop:
    """The background: a gradient between two colours plus a soft pattern.

    ``pattern_scale`` is the pattern period in frame widths, ``pattern_angle``
    in degrees, ``pattern_seed`` places blobs.
    """

    style: BackdropStyle
    colour_a: Colour
    colour_b: Colour
    pattern: BackdropPattern
    pattern_colour: Colour
    pattern_scale: float
    pattern_angle: float
    pattern_seed: int


@dataclass(frozen=True)
class Identity:
    """Everything about one synthetic person that reenactment must preserve.

    Build one with `Identity.from_seed`; the same seed always gives the same
    identity. ``seed`` is kept for bookkeeping only; rendering never reads it.
    """

    seed: int
    face: FaceShape
    skin: Colour
    eyes: Eyes
    brows: Brows
    nose: Nose
    mouth: Mouth
    hair: Hair
    body: Body
    backdrop: Backdrop

    @classmethod
    def from_seed(cls, seed: int) -> Identity:
        """Sample an identity; every seed >= 0 gives a valid person."""
        g = rng(IDENTITY_STREAM, seed)
        skin = _skin_tone(g)
        hair = _hair(g)
        return cls(
            seed=seed,
            face=_face_shape(g),
            skin=skin,
            eyes=_eyes(g),
            brows=_brows(g, hair.colour),
            nose=_nose(g),
            mouth=_mouth(g, skin),
            hair=hair,
            body=_body(g),
            backdrop=_backdrop(g),
        )


# Skin tones from light to dark (RGB); sampled with a little jitter.
_SKIN_TONES: tuple[Colour, ...] = (
    (250, 218, 196),
    (238, 196, 168),
    (226, 180, 146),
    (204, 152, 112),
    (178, 124, 88),
    (150, 98, 66),
    (116, 74, 50),
    (88, 56, 40),
)

_HAIR_COLOURS: tuple[Colour, ...] = (
    (28, 22, 20),  # black
    (62, 42, 30),  # dark brown
    (104, 70, 44),  # brown
    (140, 64, 34),  # auburn
    (196, 156, 96),  # blonde
    (186, 100, 50),  # ginger
    (150, 146, 140),  # grey
    (222, 216, 204),  # white
)

_DYED_HAIR: tuple[Colour, ...] = ((60, 90, 190), (200, 80, 150), (110, 60, 160), (40, 140, 110))

_IRIS_COLOURS: tuple[Colour, ...] = (
    (92, 56, 30),
    (120, 86, 46),
    (70, 110, 160),
    (80, 120, 80),
    (110, 120, 124),
    (46, 32, 24),
)

_HAIR_STYLE_WEIGHTS: dict[HairStyle, float] = {
    HairStyle.SHORT: 0.22,
    HairStyle.LONG: 0.2,
    HairStyle.BUN: 0.1,
    HairStyle.BALD: 0.1,
    HairStyle.FRINGE: 0.13,
    HairStyle.BOB: 0.15,
    HairStyle.AFRO: 0.1,
}


def _jitter(g: np.random.Generator, colour: Colour, amount: float) -> Colour:
    values = np.asarray(colour, dtype=np.float64) + g.normal(0.0, amount, 3)
    return _to_colour(values)


def _to_colour(values: np.ndarray) -> Colour:
    r, gr, b = np.clip(np.round(values), 0, 255).astype(int).tolist()
    return (r, gr, b)


def _hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return _to_colour(np.array([r, g, b]) * 255.0)


def _pick(g: np.random.Generator, options: tuple[Colour, ...]) -> Colour:
    return options[int(g.integers(len(options)))]


def _skin_tone(g: np.random.Generator) -> Colour:
    # Blend two neighbouring tones so the palette is continuous.
    pos = g.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(_SKIN_TONES) - 1)
    frac = pos - lo
    base = (1 - frac) * np.asarray(_SKIN_TONES[lo]) + frac * np.asarray(_SKIN_TONES[hi])
    return _jitter(g, _to_colour(base), 5.0)


def _face_shape(g: np.random.Generator) -> FaceShape:
    return FaceShape(
        half_width=float(g.uniform(0.235, 0.285)),
        crown=float(g.uniform(1.15, 1.32)),
        chin=float(g.uniform(1.15, 1.38)),
        depth=float(g.uniform(0.95, 1.1)),
        jaw_exponent=float(g.uniform(1.7, 4.0)),
        chin_width=float(g.uniform(0.18, 0.45)),
        ear_size=float(g.uniform(0.5, 0.68)),
    )


def _eyes(g: np.random.Generator) -> Eyes:
    return Eyes(
        spacing=float(g.uniform(0.36, 0.46)),
        width=float(g.uniform(0.28, 0.36)),
        aspect=float(g.uniform(0.36, 0.52)),
        height=float(g.uniform(-0.06, 0.04)),
        tilt=float(g.uniform(-0.1, 0.25)),
        iris_size=float(g.uniform(0.38, 0.5)),
        iris=_jitter(g, _pick(g, _IRIS_COLOURS), 10.0),
    )


def _brows(g: np.random.Generator, hair_colour: Colour) -> Brows:
    # Brows usually match the hair, a little darker; sometimes they do not.
    if g.uniform() < 0.8:
        base = _to_colour(np.asarray(hair_colour) * 0.75)
    else:
        base = _pick(g, _HAIR_COLOURS[:4])
    return Brows(
        thickness=float(g.uniform(0.045, 0.11)),
        arch=float(g.uniform(0.0, 0.12)),
        gap=float(g.uniform(0.24, 0.34)),
        length=float(g.uniform(1.1, 1.4)),
        colour=_jitter(g, base, 6.0),
    )


def _nose(g: np.random.Generator) -> Nose:
    return Nose(
        height=float(g.uniform(0.46, 0.6)),
        length=float(g.uniform(0.18, 0.34)),
        width=float(g.uniform(0.22, 0.34)),
    )


def _mouth(g: np.random.Generator, skin: Colour) -> Mouth:
    red = np.array([196.0, 70.0, 80.0]) if g.uniform() < 0.7 else np.array([150.0, 40.0, 90.0])
    mix = g.uniform(0.3, 0.65)
    colour = _to_colour((1 - mix) * np.asarray(skin) * 0.85 + mix * red)
    return Mouth(
        height=float(g.uniform(0.86, 0.98)),
        width=float(g.uniform(0.52, 0.72)),
        upper_lip=float(g.uniform(0.045, 0.085)),
        lower_lip=float(g.uniform(0.06, 0.11)),
        colour=_jitter(g, colour, 6.0),
    )


def _hair(g: np.random.Generator) -> Hair:
    styles = list(_HAIR_STYLE_WEIGHTS)
    weights = np.array([_HAIR_STYLE_WEIGHTS[s] for s in styles])
    style = styles[int(g.choice(len(styles), p=weights / weights.sum()))]
    palette = _DYED_HAIR if g.uniform() < 0.08 else _HAIR_COLOURS
    volume = {
        HairStyle.AFRO: (0.3, 0.42),
        HairStyle.BUN: (0.03, 0.05),
        HairStyle.SHORT: (0.08, 0.16),
    }.get(style, (0.06, 0.11))
    return Hair(
        style=style,
        colour=_jitter(g, _pick(g, palette), 8.0),
        hairline=float(g.uniform(0.55, 0.75)),
        volume=float(g.uniform(*volume)),
        length=float(g.uniform(0.95, 1.15)),
    )


def _body(g: np.random.Generator) -> Body:
    cloth = _hsv(g.uniform(), g.uniform(0.15, 0.75), g.uniform(0.2, 0.9))
    accent = _hsv(g.uniform(), g.uniform(0.0, 0.6), g.uniform(0.3, 1.0))
    return Body(
        neck_width=float(g.uniform(0.5, 0.66)),
        shoulder_y=float(g.uniform(0.87, 0.93)),
        shoulder_span=float(g.uniform(0.42, 0.56)),
        shoulder_drop=float(g.uniform(0.04, 0.1)),
        cloth=cloth,
        cloth_accent=accent,
        pattern=list(ClothPattern)[int(g.integers(len(ClothPattern)))],
        collar=list(Collar)[int(g.integers(len(Collar)))],
    )


def _backdrop(g: np.random.Generator) -> Backdrop:
    hue = g.uniform()
    colour_a = _hsv(hue, g.uniform(0.05, 0.6), g.uniform(0.35, 0.95))
    colour_b = _hsv(hue + g.normal(0, 0.08), g.uniform(0.05, 0.6), g.uniform(0.2, 0.9))
    return Backdrop(
        style=list(BackdropStyle)[int(g.integers(len(BackdropStyle)))],
        colour_a=colour_a,
        colour_b=colour_b,
        pattern=list(BackdropPattern)[int(g.integers(len(BackdropPattern)))],
        pattern_colour=_hsv(g.uniform(), g.uniform(0.0, 0.5), g.uniform(0.4, 1.0)),
        pattern_scale=float(g.uniform(0.12, 0.35)),
        pattern_angle=float(g.uniform(0, 180)),
        pattern_seed=int(g.integers(2**31)),
    )
