"""A fixed, named set of 33 face landmarks.

The points are 3D-consistent (like 3DDFA's 68 points, unlike a detector's
contour points): each is a fixed point of the face surface, so under yaw the
jaw points of the far side slide behind the silhouette instead of tracking
it; `Render.landmark_visible` says which face the camera. ``left``/``right``
are image sides. Order, by group:

    jaw_0 .. jaw_8   image-left ear level, down round the chin (jaw_4) and up
                     to the image-right ear level
    brows            left outer/mid/inner, right inner/mid/outer
    eyes             left outer/top/inner/bottom, right inner/top/outer/bottom
    nose             bridge, tip, left wing, right wing
    mouth            left and right corner, outer top and bottom (lip edges),
                     inner top and bottom (the opening)
"""

from __future__ import annotations

import numpy as np

from training.world.face import Features
from training.world.geometry import Array, constant
from training.world.scene import Scene

_JAW_U = constant(np.radians([-88.0, -84.0, -74.0, -48.0, 0.0, 48.0, 74.0, 84.0, 88.0]))
_JAW_T = constant(np.array([0.12, 0.45, 0.72, 0.93, 1.0, 0.93, 0.72, 0.45, 0.12]))

LANDMARK_NAMES: tuple[str, ...] = (
    *(f"jaw_{i}" for i in range(9)),
    "brow_left_outer",
    "brow_left_mid",
    "brow_left_inner",
    "brow_right_inner",
    "brow_right_mid",
    "brow_right_outer",
    "eye_left_outer",
    "eye_left_top",
    "eye_left_inner",
    "eye_left_bottom",
    "eye_right_inner",
    "eye_right_top",
    "eye_right_outer",
    "eye_right_bottom",
    "nose_bridge",
    "nose_tip",
    "nose_left",
    "nose_right",
    "mouth_left",
    "mouth_right",
    "mouth_top",
    "mouth_bottom",
    "mouth_inner_top",
    "mouth_inner_bottom",
)

JAW_LANDMARKS: tuple[int, ...] = tuple(range(9))
"""Indices of the jaw contour, the points a landmark loss usually weights up."""


def landmarks_3d(scene: Scene, features: Features) -> Array:
    """All landmarks in the head frame, ``(len(LANDMARK_NAMES), 3)``."""
    head = scene.head
    jaw = scene.deform(head.surface(_JAW_U, _JAW_T * head.chin))
    (left_brow, _), (right_brow, _) = features.brows
    left_eye, right_eye = features.eyes
    nose, mouth = features.nose, features.mouth
    mid = len(mouth.outer_top) // 2
    eye_mid = len(left_eye.upper) // 2
    points = [
        *jaw,
        left_brow[-1], left_brow[4], left_brow[0],
        right_brow[0], right_brow[4], right_brow[-1],
        left_eye.lower[0], left_eye.upper[eye_mid], left_eye.lower[-1], left_eye.lower[eye_mid],
        right_eye.lower[0], right_eye.upper[eye_mid], right_eye.lower[-1], right_eye.lower[eye_mid],
        nose["bridge"], nose["tip"], nose["wing_left"], nose["wing_right"],
        mouth.outer_top[0], mouth.outer_top[-1],
        mouth.outer_top[mid], mouth.outer_bottom[mid],
        mouth.inner_top[mid], mouth.inner_bottom[mid],
    ]  # fmt: skip
    return np.stack(points)


def landmark_normals(scene: Scene, points: Array) -> Array:
    """Approximate outward surface normals at head-frame ``points`` ``(K, 3)``."""
    head = scene.head
    vertical = np.where(points[:, 1] < 0, head.crown, head.chin)
    across, deep = np.full_like(vertical, head.rx), np.full_like(vertical, head.depth)
    return points / np.stack([across, vertical, deep], 1) ** 2
