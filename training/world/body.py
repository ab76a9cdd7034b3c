"""Shoulders, clothing and the neck that joins them to the head.

The torso lives in frame coordinates and barely follows the head (a third of
its translation, a little of its yaw); the neck's top is fixed in the head
frame and its base on the torso, so it bends as the head moves.
"""

from __future__ import annotations

import numpy as np

from training.world.canvas import Painter, Region
from training.world.geometry import Array
from training.world.identity import ClothPattern, Collar
from training.world.scene import Scene, tint


def _torso_centre(scene: Scene) -> tuple[float, float]:
    m = scene.motion
    x = 0.5 + 0.35 * m.tx + 0.03 * np.sin(np.radians(m.yaw))
    y = scene.identity.body.shoulder_y + 0.3 * m.ty
    return float(x), float(y)


def _neck_half(scene: Scene) -> float:
    return scene.identity.body.neck_width * scene.rx


def torso_outline(scene: Scene) -> Array:
    """Shoulders and chest as a polygon ``(N, 2)`` reaching below the frame."""
    body = scene.identity.body
    cx, sy = _torso_centre(scene)
    neck = 1.2 * _neck_half(scene)
    t = np.linspace(0.0, 1.0, 8)[:, None]
    # A quadratic curve from the neck base out to the shoulder point.
    start = np.array([neck, -0.035])
    control = np.array([0.55 * body.shoulder_span, -0.02])
    end = np.array([body.shoulder_span, body.shoulder_drop])
    slope = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    arm = np.array([[body.shoulder_span + 0.06, body.shoulder_drop + 0.07], [0.62, 1.2 - sy]])
    right = np.concatenate([slope, arm])
    left = right[::-1] * np.array([-1.0, 1.0])
    return np.concatenate([right, left]) + np.array([cx, sy])


def neckline(scene: Scene) -> Array:
    """The clothing's opening at the neck, from the right base to the left, ``(N, 2)``."""
    cx, sy = _torso_centre(scene)
    half = 1.15 * _neck_half(scene)
    depth = {Collar.ROUND: 0.05, Collar.V_NECK: 0.13, Collar.SHIRT: 0.09}.get(
        scene.identity.body.collar, 0.0
    )
    e = np.linspace(1.0, -1.0, 9)
    if scene.identity.body.collar in (Collar.V_NECK, Collar.SHIRT):
        drop = depth * (1.0 - np.abs(e))
    else:
        drop = depth * np.sqrt(1.0 - e**2)
    return np.stack([cx + half * e, sy - 0.03 + drop], axis=1)


def draw_torso(painter: Painter, scene: Scene) -> None:
    body = scene.identity.body
    outline = torso_outline(scene)
    base, accent = body.cloth, body.cloth_accent
    if body.pattern is ClothPattern.JACKET:
        base, accent = accent, base
    painter.polygon(outline, base, Region.TORSO)
    cx, sy = _torso_centre(scene)
    if body.pattern is ClothPattern.STRIPES:
        bands = [
            np.array([[0, y], [1, y], [1, y + 0.025], [0, y + 0.025]])
            for y in np.arange(sy - 0.06, 1.0, 0.05)
        ]
        painter.polygons(bands, accent)
    elif body.pattern is ClothPattern.DOTS:
        gx, gy = np.meshgrid(np.arange(-0.5, 0.55, 0.06), np.arange(sy - 0.02, 1.0, 0.06))
        dots = np.stack([cx + gx.ravel() + 0.03 * (np.round(gy.ravel() / 0.06) % 2), gy.ravel()], 1)
        painter.circles(dots, 0.012, accent)
    elif body.pattern is ClothPattern.JACKET:
        half = 1.3 * _neck_half(scene)
        top, bottom = sy - 0.04, 1.05
        shirt = [[cx - half, top], [cx + half, top], [cx + 0.05, bottom], [cx - 0.05, bottom]]
        painter.polygon(np.array(shirt), accent)


def draw_neck(painter: Painter, scene: Scene) -> None:
    """The neck from under the jaw to the neckline, with the collar on top."""
    body, head = scene.identity.body, scene.head
    half = _neck_half(scene)
    top_y = 0.55 * head.chin
    top = np.array([[half, top_y, -0.25 * head.depth], [-half, top_y, -0.25 * head.depth]])
    top_px = scene.project(top)
    opening = neckline(scene)
    turtleneck = body.collar is Collar.TURTLENECK
    colour = body.cloth if turtleneck else tint(scene.identity.skin, 0.84)
    painter.polygon(np.concatenate([top_px[1:], top_px[:1], opening]), colour, Region.TORSO)
    trim = tint(body.cloth, 0.7)
    if turtleneck:
        painter.lines([_turtle_folds(scene, top_px, opening)], trim, 0.006)
        return
    painter.lines([opening], trim, 0.01)
    if body.collar is Collar.SHIRT:
        _draw_shirt_collar(painter, scene, opening)


def _turtle_folds(scene: Scene, top: Array, opening: Array) -> Array:
    """A fold line across the turtleneck, a little above its base."""
    right = 0.7 * opening[0] + 0.3 * top[0]
    left = 0.7 * opening[-1] + 0.3 * top[1]
    return np.stack([right, left])


def _draw_shirt_collar(painter: Painter, scene: Scene, opening: Array) -> None:
    accent = scene.identity.body.cloth_accent
    centre = opening[len(opening) // 2]
    for end, out in ((opening[0], 1.0), (opening[-1], -1.0)):
        offsets = np.array([[0.0, -0.015], [0.0, 0.005], [out * 0.07, 0.05]])
        flap = np.stack([end, centre, end]) + offsets
        painter.polygon(flap, tint(accent, 1.15))
