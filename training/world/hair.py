"""Hair: a cap on an inflated copy of the head, plus per-style pieces.

The cap is the part of the head surface above the hairline, pushed out by
the hair volume; its silhouette is the convex hull of its projected samples
and the face skin is painted over its front. Styles add a bun, a bumpy afro
outline, long hair falling behind the shoulders, side curtains framing the
face and a fringe over the forehead. Side curtains on the side turned away
from the camera are drawn before the face skin, so the face hides them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.world.canvas import Painter, Region
from training.world.geometry import Array, constant
from training.world.identity import HairStyle
from training.world.scene import Scene, tint

_CAP_AZIMUTHS = constant(np.radians(np.arange(-180, 180, 10, dtype=np.float64)))
_CAP_STEPS = constant(1.0 - np.cos(np.linspace(0.0, np.pi / 2, 8)))  # denser near the crown
_FACE_TURN = 0.2  # sin of the yaw beyond which a side curtain is hidden by the face


@dataclass(frozen=True)
class HairLayout:
    """Where the hair grows, as heights (head frame, y down) of the hairline.

    ``front`` is above the forehead, ``side`` above the ears, ``back`` at the
    nape; ``inflate`` is how far the hair stands off the scalp (frame units)
    and ``rise`` multiplies it on top of the head.
    """

    front: float
    side: float
    back: float
    inflate: float
    covers_ears: bool
    rise: float = 1.0

    def hairline(self, u: Array) -> Array:
        """Hairline height at azimuth ``u`` (radians; 0 faces the camera)."""
        a = np.abs(np.mod(u + np.pi, 2 * np.pi) - np.pi)
        to_side = 1.0 - np.cos(np.minimum(a, np.pi / 2))
        to_back = np.sin(np.maximum(a - np.pi / 2, 0.0)) ** 2
        front_half = self.front + (self.side - self.front) * to_side
        back_half = self.side + (self.back - self.side) * to_back
        return np.where(a <= np.pi / 2, front_half, back_half)


def hair_layout(scene: Scene) -> HairLayout | None:
    """The style's hairline, or None when the head is bald."""
    hair, head, rx = scene.identity.hair, scene.head, scene.rx
    style = hair.style
    if style is HairStyle.BALD:
        return None
    front = -hair.hairline * head.crown
    if style in (HairStyle.LONG, HairStyle.BOB, HairStyle.FRINGE):
        return HairLayout(front, 0.72 * head.chin, 0.8 * head.chin, hair.volume * rx, True)
    if style is HairStyle.AFRO:
        return HairLayout(front, 0.1 * rx, 0.4 * head.chin, hair.volume * rx, True)
    rise = 1.8 if style is HairStyle.SHORT else 1.0
    return HairLayout(front, -0.14 * rx, 0.35 * rx, hair.volume * rx, False, rise)


def shell(scene: Scene, u: Array, y: Array, inflate: float, rise: float = 1.0) -> Array:
    """Head surface points pushed out by ``inflate`` (frame units), ``(..., 3)``.

    ``rise`` scales the push upwards, for hair that stands up on top.
    """
    head = scene.head
    points = head.surface(u, y)
    grow = 1.0 + inflate / head.rx
    points[..., 0] *= grow
    points[..., 2] *= grow
    points[..., 1] = np.where(y < 0, y * (1.0 + rise * inflate / head.crown), y)
    return points


def _hull(points: Array) -> Array:
    """Convex hull of ``(N, 2)`` frame points, as ``(M, 2)``."""
    hull = cv2.convexHull(points.reshape(-1, 1, 2).astype(np.float32))
    return hull.reshape(-1, 2).astype(np.float64)


def _cap_points(scene: Scene, layout: HairLayout) -> Array:
    """Projected samples of the hair cap, ``(N, 2)``."""
    crown = scene.head.crown
    u = _CAP_AZIMUTHS[:, None]
    y = -crown + (layout.hairline(u) + crown) * _CAP_STEPS[None, :]
    return scene.project(shell(scene, u, y, layout.inflate, layout.rise)).reshape(-1, 2)


def draw_back(painter: Painter, scene: Scene) -> None:
    """Long hair falling behind the neck onto the shoulders."""
    hair = scene.identity.hair
    if hair.style is not HairStyle.LONG:
        return
    head, rx = scene.head, scene.rx
    u = np.radians(np.concatenate([np.arange(-180, -60, 15), np.arange(75, 180, 15)]))[:, None]
    y = np.linspace(-0.6 * head.crown, 0.5 * head.chin, 5)[None, :]
    top = scene.project(shell(scene, u, y, hair.volume * rx)).reshape(-1, 2)
    neck_x = float(scene.project(head.pivot)[0])
    reach = 1.35 * rx * scene.motion.scale
    bottom = np.array([[neck_x + dx, hair.length] for dx in (-reach, -0.5 * rx, 0.5 * rx, reach)])
    painter.polygon(_hull(np.concatenate([top, bottom])), tint(hair.colour, 0.8), Region.HAIR)


def draw_cap(painter: Painter, scene: Scene, layout: HairLayout) -> None:
    """The hair volume over the skull (and the bun, and the afro's curls)."""
    hair = scene.identity.hair
    if hair.style is HairStyle.BUN:
        centre = np.array([0.0, -0.92 * scene.head.crown, -0.45 * scene.head.depth])
        radius = 0.42 * scene.rx * scene.motion.scale
        painter.circles(scene.project(centre)[None], radius, tint(hair.colour, 0.9), Region.HAIR)
    outline = _hull(_cap_points(scene, layout))
    painter.polygon(outline, hair.colour, Region.HAIR)
    if hair.style is HairStyle.AFRO:
        curls = _resample(outline, 30)
        painter.circles(curls, 0.16 * scene.rx * scene.motion.scale, hair.colour, Region.HAIR)
    elif hair.style is not HairStyle.SHORT:  # strands on a crop read as a knitted cap
        _draw_strands(painter, scene, layout)


def _resample(polygon: Array, count: int) -> Array:
    """``count`` points evenly spaced along a closed polygon's perimeter."""
    closed = np.concatenate([polygon, polygon[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.linspace(0.0, dist[-1], count, endpoint=False)
    return np.stack([np.interp(at, dist, closed[:, 0]), np.interp(at, dist, closed[:, 1])], 1)


def _draw_strands(painter: Painter, scene: Scene, layout: HairLayout) -> None:
    """Meridian lines from the crown: texture that shows the head turning."""
    colour = scene.identity.hair.colour
    strand = tint(colour, 0.8) if sum(colour) > 180 else tint(colour, 1.2)
    u = np.radians(np.arange(-70, 71, 20, dtype=np.float64))
    visible = scene.pose.facing(np.stack([np.sin(u), np.zeros_like(u), np.cos(u)], 1)) > 0.15
    u = u[visible][:, None]
    crown = scene.head.crown
    y = -0.97 * crown + (layout.hairline(u) + 0.95 * crown) * _CAP_STEPS[None, :]
    lines = scene.project(shell(scene, u, y, 0.7 * layout.inflate))
    painter.lines(list(lines), strand, 0.004)


def draw_curtains(painter: Painter, scene: Scene, in_front: bool) -> None:
    """Side locks of long or chin-length hair: the sides that are ``in_front`` or not."""
    hair = scene.identity.hair
    if hair.style not in (HairStyle.LONG, HairStyle.BOB, HairStyle.FRINGE):
        return
    turn = scene.pose.matrix[2, 0]  # camera-facing share of the head's +x side
    for side in (-1.0, 1.0):
        if (side * turn > -_FACE_TURN) == in_front:
            painter.polygon(_curtain(scene, side), hair.colour, Region.HAIR)


def _curtain(scene: Scene, side: float) -> Array:
    head, hair, rx = scene.head, scene.identity.hair, scene.rx
    inflate = hair.volume * rx
    long_hair = hair.style is HairStyle.LONG
    end = (0.95 if long_hair else 0.8) * head.chin
    y = np.linspace(-0.45 * head.crown, end, 8)
    outer = scene.project(shell(scene, np.full_like(y, side * np.radians(100)), y, inflate))
    inner_u = np.radians(np.where(y > 0.5 * head.chin, 78.0, 70.0))
    inner = scene.project(shell(scene, side * inner_u, y, 0.5 * inflate))[::-1]
    if not long_hair:
        return np.concatenate([outer, inner])
    drape = np.array([[outer[-1, 0] + side * 0.04, hair.length], [inner[0, 0], hair.length]])
    return np.concatenate([outer, drape, inner])


def draw_fringe(painter: Painter, scene: Scene, layout: HairLayout) -> None:
    """Bangs: a zigzag-edged sheet over the forehead, down to the brows."""
    if scene.identity.hair.style is not HairStyle.FRINGE:
        return
    head, rx = scene.head, scene.rx
    u = np.radians(np.linspace(-80, 80, 17))
    brow = scene.identity.eyes.height * rx - scene.identity.brows.gap * rx
    zigzag = np.where(np.arange(u.size) % 2 == 0, 0.0, 0.05 * rx)
    bottom_y = brow - 0.04 * rx - zigzag + 0.25 * rx * (np.abs(u) / u.max()) ** 2
    # Columns turned away from the camera would fold the outline over itself.
    front = scene.pose.facing(np.stack([np.sin(u), np.zeros_like(u), np.cos(u)], 1)) > 0.05
    u, bottom_y = u[front], bottom_y[front]
    if u.size < 2:
        return
    top = shell(scene, u, np.full_like(u, -0.85 * head.crown), layout.inflate)
    bottom = shell(scene, u, bottom_y, 0.6 * layout.inflate)
    outline = scene.project(np.concatenate([top, bottom[::-1]]))
    painter.polygon(outline, tint(scene.identity.hair.colour, 0.95), Region.HAIR)
