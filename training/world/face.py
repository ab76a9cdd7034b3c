"""The face: skin outline, ears, eyes, brows, nose, mouth and the landmarks.

Every feature is a set of points on the front surface of the head (head
frame, `training.world.geometry`), moved by the pose and projected; the same
curve functions feed both the drawing and the landmarks, so landmarks sit
exactly on what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.world.canvas import Painter, Region
from training.world.geometry import Array, constant
from training.world.hair import HairLayout
from training.world.identity import Colour
from training.world.scene import Scene, tint

_SKIN_AZIMUTHS = constant(np.radians(np.arange(-88, 89, 8, dtype=np.float64)))
_HEAD_AZIMUTHS = constant(np.radians(np.arange(-180, 180, 12, dtype=np.float64)))
_DOWN = constant(np.linspace(0.0, 1.0, 12))
_SCLERA = (236, 232, 226)
_TEETH = (240, 236, 224)
_MOUTH_INSIDE = (86, 30, 36)
_EAR_OUT = float(np.radians(40.0))
_EYE_S = constant(np.linspace(0.0, 1.0, 11))
_EYE_UPPER = constant(np.sin(np.pi * _EYE_S) ** 0.75)
_EYE_LOWER = constant(np.sin(np.pi * _EYE_S) ** 1.2)
_EYE_BULGE = constant(np.sin(np.pi * _EYE_S))
_BROW_S = constant(np.linspace(0.0, 1.0, 9))
_MOUTH_E = constant(np.linspace(-1.0, 1.0, 13))
_MOUTH_ENV = constant(np.sqrt(1.0 - _MOUTH_E**2))
_DISC = constant(np.linspace(0, 2 * np.pi, 16, endpoint=False))
_DISC_RING = constant(np.stack([np.cos(_DISC), np.sin(_DISC), np.zeros_like(_DISC)], 1))


# --- skin and ears -----------------------------------------------------------


def skin_outline(scene: Scene, layout: HairLayout | None) -> Array:
    """The visible face skin as a convex polygon ``(M, 2)`` in frame units.

    With hair it is the front of the head below the hairline; bald, the
    whole head.
    """
    head = scene.head
    if layout is None:
        u = _HEAD_AZIMUTHS[:, None]
        top = np.full_like(u, -head.crown)
    else:
        u = _SKIN_AZIMUTHS[:, None]
        top = layout.hairline(u)
    y = top + (head.chin - top) * _DOWN[None, :]
    points = scene.project(scene.deform(head.surface(u, y))).reshape(-1, 2)
    hull = cv2.convexHull(points.reshape(-1, 1, 2).astype(np.float32))
    return hull.reshape(-1, 2).astype(np.float64)


def draw_skin(painter: Painter, scene: Scene, layout: HairLayout | None) -> None:
    painter.polygon(skin_outline(scene, layout), scene.identity.skin, Region.FACE)


def draw_ears(painter: Painter, scene: Scene) -> None:
    """Both ears; drawn before the face skin, which hides the far one."""
    skin = scene.identity.skin
    for side in (-1.0, 1.0):
        outer, inner = _ear(scene, side)
        painter.polygon(scene.project(outer), tint(skin, 0.94), Region.FACE)
        painter.polygon(scene.project(inner), tint(skin, 0.78))


def _ear(scene: Scene, side: float) -> tuple[Array, Array]:
    """Ear rim and bowl in the head frame, each ``(N, 3)``."""
    rx = scene.rx
    height = scene.identity.face.ear_size * rx
    y0 = 0.12 * rx
    root = np.array([side * 0.96 * float(scene.head.half_width(np.array(y0))), y0, -0.1 * rx])
    up = np.array([0.0, 1.0, 0.0])
    out = np.array([side * np.cos(_EAR_OUT), 0.0, -np.sin(_EAR_OUT)])
    theta = np.linspace(0, 2 * np.pi, 16, endpoint=False)[:, None]
    lobe = 1.0 - 0.3 * np.clip(np.cos(theta), 0.0, 1.0)  # narrower towards the lobe
    a = 0.5 * height * np.cos(theta)
    b = 0.36 * height * (0.1 + 0.9 * (0.5 + 0.5 * np.sin(theta))) * lobe
    rim = root + a * up + b * out
    bowl = root + 0.55 * a * up + (0.16 * height + 0.5 * (b - 0.036 * height)) * out
    return rim, bowl


# --- eyes --------------------------------------------------------------------


@dataclass(frozen=True)
class EyeCurves:
    """One eye in the head frame; curves run from the image-left corner.

    ``upper`` is the lid as blinked, ``upper_open`` where it would be open.
    """

    upper: Array
    lower: Array
    upper_open: Array
    iris_centre: Array
    iris_radius: float


def eye_curves(scene: Scene, side: float) -> EyeCurves:
    eyes, rx = scene.identity.eyes, scene.rx
    width = eyes.width * rx
    height = width * eyes.aspect
    cx, cy = side * eyes.spacing * rx, eyes.height * rx
    s = _EYE_S
    outer = s if side > 0 else 1.0 - s
    y_tilt = cy - eyes.tilt * height * (outer - 0.5)
    upper_open_y = y_tilt - 0.55 * height * _EYE_UPPER
    lower_y = y_tilt + 0.38 * height * _EYE_LOWER
    blink = scene.motion.blink_left if side < 0 else scene.motion.blink_right
    openness = 1.0 - float(np.clip(blink, 0.0, 1.0))
    upper_y = lower_y + (upper_open_y - lower_y) * openness
    n = s.size
    x = np.concatenate([np.tile(cx + (s - 0.5) * width, 3), [cx]])
    y = np.concatenate([upper_y, lower_y, upper_open_y, [cy - 0.12 * height]])
    lift = np.concatenate([np.tile(0.03 * rx * _EYE_BULGE, 3), [0.03 * rx]])
    points = scene.head.on_face(x, y, lift)
    return EyeCurves(
        upper=points[:n],
        lower=points[n : 2 * n],
        upper_open=points[2 * n : 3 * n],
        iris_centre=points[-1],
        iris_radius=eyes.iris_size * height,
    )


def _disc(scene: Scene, centre: Array, radius: float) -> Array:
    """A circle of ``radius`` on the face plane around ``centre``, projected ``(N, 2)``."""
    return scene.project(centre + radius * _DISC_RING)


def draw_eye(painter: Painter, scene: Scene, eye: EyeCurves) -> None:
    skin, iris_colour = scene.identity.skin, scene.identity.eyes.iris
    upper, lower = scene.project(eye.upper), scene.project(eye.lower)
    painter.polygon(np.concatenate([upper, lower[::-1]]), _SCLERA)
    painter.polygon(_disc(scene, eye.iris_centre, eye.iris_radius), iris_colour)
    painter.polygon(_disc(scene, eye.iris_centre, 0.45 * eye.iris_radius), (18, 14, 14))
    glint = eye.iris_centre + np.array([-0.35, -0.35, 0.0]) * eye.iris_radius
    painter.circles(scene.project(glint)[None], 0.18 * eye.iris_radius, (250, 250, 250))
    _draw_lids(painter, scene, eye, tint(skin, 0.97))
    lid_line = tint(scene.identity.brows.colour, 0.5)
    painter.lines([upper], lid_line, 0.008 * scene.motion.scale)
    crease = eye.upper_open - np.array([0.0, 0.25 * eye.iris_radius + 0.02 * scene.rx, 0.0])
    painter.lines([scene.project(crease[2:-2])], tint(skin, 0.82), 0.004)


def _draw_lids(painter: Painter, scene: Scene, eye: EyeCurves, colour: Colour) -> None:
    """Skin bands above and below the opening: they clip the iris to the eye."""
    reach = np.array([0.0, 1.4 * eye.iris_radius, 0.0])
    above = np.minimum(eye.upper[:, 1], eye.upper_open[:, 1])
    top_band = eye.upper.copy()
    top_band[:, 1] = above
    upper_cover = np.concatenate([eye.upper, (top_band - reach)[::-1]])
    lower_cover = np.concatenate([eye.lower, (eye.lower + reach)[::-1]])
    painter.polygons([scene.project(upper_cover), scene.project(lower_cover)], colour)


# --- brows -------------------------------------------------------------------


def brow_curve(scene: Scene, side: float) -> tuple[Array, Array]:
    """Brow centre line (head frame, inner to outer end) and thickness per point."""
    ident, rx = scene.identity, scene.rx
    brows, eyes = ident.brows, ident.eyes
    width = eyes.width * rx
    length = brows.length * width
    s = _BROW_S
    raise_, frown = max(scene.motion.brow_raise, 0.0), max(-scene.motion.brow_raise, 0.0)
    inner_x = eyes.spacing * rx - 0.48 * width - 0.05 * rx * frown
    x = side * (inner_x + s * length)
    y = (
        eyes.height * rx
        - brows.gap * rx
        - brows.arch * rx * np.sin(np.pi * s**0.7)
        - raise_ * 0.11 * rx * (1.0 - 0.3 * s)
        + frown * 0.08 * rx * (1.0 - s)
    )
    thickness = brows.thickness * rx * (1.0 - 0.55 * s**1.5)
    return scene.head.on_face(x, y, 0.01 * rx), thickness


def draw_brow(painter: Painter, scene: Scene, brow: tuple[Array, Array]) -> None:
    centre, thickness = brow
    offset = np.zeros_like(centre)
    offset[:, 1] = thickness / 2
    outline = np.concatenate([centre - offset, (centre + offset)[::-1]])
    painter.polygon(scene.project(outline), scene.identity.brows.colour)


# --- nose --------------------------------------------------------------------


_NOSE_NAMES = (
    "bridge", "tip", "wing_left", "wing_right", "base", "side_right",
    "wing_top_left", "wing_top_right", "nostril_left", "nostril_right",
)  # fmt: skip


def nose_points(scene: Scene) -> dict[str, Array]:
    """Named nose points in the head frame, each ``(3,)``."""
    nose, rx = scene.identity.nose, scene.rx
    tip, length, half = nose.height * rx, nose.length * rx, 0.5 * nose.width * rx
    eye_y = scene.identity.eyes.height * rx
    xyl = np.array([
        (0.0, eye_y, 0.22 * length),
        (0.0, tip, length),
        (-half, tip + 0.03 * rx, 0.3 * length),
        (half, tip + 0.03 * rx, 0.3 * length),
        (0.0, tip + 0.08 * rx, 0.45 * length),
        (0.1 * rx, tip - 0.3 * rx, 0.45 * length),
        (-0.7 * half, tip - 0.06 * rx, 0.4 * length),
        (0.7 * half, tip - 0.06 * rx, 0.4 * length),
        (-0.45 * half, tip + 0.06 * rx, 0.45 * length),
        (0.45 * half, tip + 0.06 * rx, 0.45 * length),
    ])  # fmt: skip
    points = scene.head.on_face(xyl[:, 0], xyl[:, 1], xyl[:, 2])
    return dict(zip(_NOSE_NAMES, points, strict=True))


def draw_nose(painter: Painter, scene: Scene, nose: dict[str, Array]) -> None:
    names = list(nose)
    projected = scene.project(np.stack([nose[k] for k in names]))
    p = dict(zip(names, projected, strict=True))
    skin, rx = scene.identity.skin, scene.rx
    shadow = [p["bridge"], p["side_right"], p["wing_right"], p["base"], p["tip"]]
    painter.polygon(np.stack(shadow), tint(skin, 0.88))
    crease = tint(skin, 0.72)
    for side in ("left", "right"):
        wing = [p[f"wing_top_{side}"], p[f"wing_{side}"], p[f"nostril_{side}"]]
        painter.lines([np.stack(wing)], crease, 0.005 * scene.motion.scale)
    nostrils = np.stack([p["nostril_left"], p["nostril_right"]])
    painter.circles(nostrils, 0.028 * rx * scene.motion.scale, tint(skin, 0.45))
    painter.circles(p["tip"][None] - 0.006, 0.04 * rx * scene.motion.scale, tint(skin, 1.12))


# --- mouth -------------------------------------------------------------------


@dataclass(frozen=True)
class MouthCurves:
    """Lip contours in the head frame, each ``(N, 3)`` from the image-left corner."""

    outer_top: Array
    inner_top: Array
    inner_bottom: Array
    outer_bottom: Array


def mouth_curves(scene: Scene) -> MouthCurves:
    mouth, rx, motion = scene.identity.mouth, scene.rx, scene.motion
    smile = float(np.clip(motion.smile, -1.5, 1.5))
    opened = float(np.clip(motion.mouth_open, 0.0, 1.2))
    e, env = _MOUTH_E, _MOUTH_ENV
    half = 0.5 * mouth.width * rx * (1.0 + 0.12 * max(smile, 0.0) - 0.06 * opened)
    base = scene.mouth_y - 0.08 * rx * smile * e**2
    bow = 1.0 - 0.3 * np.exp(-((e / 0.2) ** 2))
    thin = 1.0 - 0.3 * max(smile, 0.0)
    inner_top = base - 0.05 * rx * opened * env
    inner_bottom = base + scene.jaw_drop * env**0.8
    outer_top = base - mouth.upper_lip * rx * thin * env**0.6 * bow - 0.5 * (base - inner_top)
    outer_bottom = inner_bottom + mouth.lower_lip * rx * thin * env**0.7
    ys = np.concatenate([outer_top, inner_top, inner_bottom, outer_bottom])
    points = scene.head.on_face(np.tile(half * e, 4), ys, np.tile(0.04 * rx * env, 4))
    top, inner, bottom, lower = np.split(points, 4)
    return MouthCurves(outer_top=top, inner_top=inner, inner_bottom=bottom, outer_bottom=lower)


def draw_mouth(painter: Painter, scene: Scene, m: MouthCurves) -> None:
    lips = scene.identity.mouth.colour
    top, bottom = scene.project(m.inner_top), scene.project(m.inner_bottom)
    painter.polygon(np.concatenate([top, bottom[::-1]]), _MOUTH_INSIDE)
    teeth_edge = m.inner_top.copy()
    teeth_edge[:, 1] = np.minimum(m.inner_top[:, 1] + 0.1 * scene.rx, m.inner_bottom[:, 1])
    painter.polygon(np.concatenate([top, scene.project(teeth_edge)[::-1]]), _TEETH)
    painter.polygon(np.concatenate([scene.project(m.outer_top), top[::-1]]), tint(lips, 0.92))
    painter.polygon(np.concatenate([bottom, scene.project(m.outer_bottom)[::-1]]), lips)
    painter.lines([top], tint(lips, 0.55), 0.005 * scene.motion.scale)


@dataclass(frozen=True)
class Features:
    """All feature geometry of one scene (head frame), computed once."""

    eyes: tuple[EyeCurves, EyeCurves]
    brows: tuple[tuple[Array, Array], tuple[Array, Array]]
    nose: dict[str, Array]
    mouth: MouthCurves

    @classmethod
    def of(cls, scene: Scene) -> Features:
        return cls(
            eyes=(eye_curves(scene, -1.0), eye_curves(scene, 1.0)),
            brows=(brow_curve(scene, -1.0), brow_curve(scene, 1.0)),
            nose=nose_points(scene),
            mouth=mouth_curves(scene),
        )


def draw_features(painter: Painter, scene: Scene, features: Features) -> None:
    """Eyes, brows, nose and mouth, in painting order."""
    for eye, brow in zip(features.eyes, features.brows, strict=True):
        draw_eye(painter, scene, eye)
        draw_brow(painter, scene, brow)
    draw_nose(painter, scene, features.nose)
    draw_mouth(painter, scene, features.mouth)
