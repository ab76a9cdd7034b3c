"""One identity in one motion: the shared state of every drawing step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.world.geometry import Array, Head, Pose
from training.world.identity import Colour, Identity
from training.world.motion import Motion


@dataclass(frozen=True)
class Scene:
    """An `Identity` posed by a `Motion`, with the derived geometry."""

    identity: Identity
    motion: Motion
    head: Head
    pose: Pose

    @classmethod
    def of(cls, identity: Identity, motion: Motion) -> Scene:
        head = Head.of(identity)
        return cls(identity=identity, motion=motion, head=head, pose=Pose.of(head, motion))

    @property
    def rx(self) -> float:
        return self.head.rx

    @property
    def mouth_y(self) -> float:
        return self.identity.mouth.height * self.rx

    @property
    def jaw_drop(self) -> float:
        """How far the chin moves down with the open mouth (frame units)."""
        return 0.26 * self.rx * float(np.clip(self.motion.mouth_open, 0.0, 1.2))

    def deform(self, points: Array) -> Array:
        """Move head-frame points below the mouth down with the jaw."""
        y = points[..., 1]
        ramp = np.clip((y - self.mouth_y) / (0.25 * self.rx), 0.0, 1.0)
        moved = points.copy()
        moved[..., 1] = y + self.jaw_drop * ramp
        return moved

    def project(self, points: Array) -> Array:
        """Head-frame points ``(..., 3)`` to frame coordinates ``(..., 2)``."""
        return self.pose.project(points)


def tint(colour: Colour, factor: float) -> Colour:
    """``colour`` darkened (factor < 1) or lightened towards white (factor > 1)."""
    c = np.asarray(colour, np.float64)
    out = c * factor if factor <= 1 else c + (255 - c) * (factor - 1)
    r, g, b = np.clip(np.round(out), 0, 255).astype(int).tolist()
    return (r, g, b)
