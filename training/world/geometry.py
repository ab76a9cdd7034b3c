"""The head as a 3D volume, and the camera that sees it.

Head frame: origin at the head centre on the eye line, x to the image right,
y down, z towards the camera; units are frame widths. The head is a stack of
horizontal elliptical cross-sections. At height ``y`` the section has
half-width ``half_width(y)`` and depth radii ``front(y)`` (towards the camera)
and ``back(y)``. Above the eye line the sections trace an ellipsoid (the
cranium); below it the width follows a superellipse from the cheeks down to a
flat chin, which gives jaw shape control with two numbers.

Silhouettes come from projecting sampled surface points and taking their
convex hull; features are points placed on the front surface with
`Head.front_z` and moved with the same pose, so everything stays consistent
under rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from training.world.identity import Identity
from training.world.motion import Motion

Array = npt.NDArray[np.float64]


def constant(values: npt.ArrayLike) -> Array:
    """A read-only float array, for module-level lookup tables."""
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


CAMERA_DISTANCE = 2.5
"""Camera distance in frame widths: a mild perspective, like a webcam at arm's length."""

HEAD_CENTRE = (0.5, 0.42)
"""Where a neutral head's eye-line centre sits in the frame (x, y in frame units)."""


@dataclass(frozen=True)
class Head:
    """Head dimensions in frame widths, derived from an `Identity`."""

    rx: float
    crown: float
    chin: float
    depth: float
    jaw_exponent: float
    chin_width: float

    @classmethod
    def of(cls, identity: Identity) -> Head:
        face = identity.face
        rx = face.half_width
        return cls(
            rx=rx,
            crown=face.crown * rx,
            chin=face.chin * rx,
            depth=face.depth * rx,
            jaw_exponent=face.jaw_exponent,
            chin_width=face.chin_width,
        )

    def profile(self, y: Array) -> tuple[Array, Array, Array]:
        """Section shape at height ``y``: ``(half_width, front, back)``, each like ``y``.

        ``front`` and ``back`` are the depth radii towards and away from the
        camera; the lower face recedes a little at the front and narrows into
        the neck at the back.
        """
        y = np.asarray(y, np.float64)
        upper = y < 0
        dome = np.sqrt(np.maximum(1.0 - (y / self.crown) ** 2, 0.0))
        t = np.minimum(np.maximum(y / self.chin, 0.0), 1.0)
        n = self.jaw_exponent
        jaw = self.chin_width + (1.0 - self.chin_width) * (1.0 - t**n) ** (1.0 / n)
        half_width = self.rx * np.where(upper, dome, jaw)
        front = self.depth * np.where(upper, dome, 1.0 - 0.3 * t * t)
        back = self.depth * np.where(upper, dome, 1.0 - 0.6 * t)
        return half_width, front, back

    def half_width(self, y: Array) -> Array:
        """Half-width of the cross-section at height ``y`` (any shape)."""
        return self.profile(y)[0]

    def surface(self, u: Array, y: Array) -> Array:
        """Points at azimuth ``u`` (radians, 0 faces the camera) and height ``y``.

        ``u`` and ``y`` broadcast together. Returns ``(..., 3)``.
        """
        u, y = np.broadcast_arrays(u, y)
        half_width, front, back = self.profile(y)
        cos_u = np.cos(u)
        depth = np.where(cos_u >= 0, front, back)
        return np.stack([half_width * np.sin(u), y, depth * cos_u], axis=-1)

    def front_z(self, x: Array, y: Array) -> Array:
        """Depth of the front surface at ``(x, y)``; 0 outside the outline."""
        half_width, front, _ = self.profile(y)
        ratio = np.minimum(np.abs(x) / np.maximum(half_width, 1e-6), 1.0)
        return front * np.sqrt(1.0 - ratio**2)

    def on_face(self, x: Array, y: Array, lift: Array | float = 0.0) -> Array:
        """Points on the front surface at ``(x, y)``, raised by ``lift``; ``(..., 3)``."""
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        return np.stack([x, y, self.front_z(x, y) + lift], axis=-1)

    @property
    def pivot(self) -> Array:
        """Rotation centre: the top of the neck, below and behind the head centre."""
        return np.array([0.0, 0.7 * self.chin, -0.45 * self.depth])


def rotation(yaw: float, pitch: float, roll: float) -> Array:
    """Head rotation (degrees, see `training.world.motion`): pitch, then yaw, then roll."""
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Pose:
    """Places head-frame points in the picture for one `Motion`."""

    matrix: Array
    pivot: Array
    scale: float
    centre: Array

    @classmethod
    def of(cls, head: Head, motion: Motion) -> Pose:
        centre = np.array([HEAD_CENTRE[0] + motion.tx, HEAD_CENTRE[1] + motion.ty])
        return cls(
            matrix=rotation(motion.yaw, motion.pitch, motion.roll),
            pivot=head.pivot,
            scale=float(motion.scale),
            centre=centre,
        )

    def to_camera(self, points: Array) -> Array:
        """Head-frame ``(..., 3)`` points to posed points, still 3D."""
        return self.scale * (points - self.pivot) @ self.matrix.T + self.pivot

    def project(self, points: Array) -> Array:
        """Head-frame ``(..., 3)`` points to frame coordinates ``(..., 2)`` in [0, 1]."""
        cam = self.to_camera(points)
        perspective = CAMERA_DISTANCE / (CAMERA_DISTANCE - cam[..., 2:3])
        return self.centre + cam[..., :2] * perspective

    def facing(self, normals: Array) -> Array:
        """Camera-facing component of head-frame normals ``(..., 3)`` -> ``(...)``."""
        return normals @ self.matrix[2]
