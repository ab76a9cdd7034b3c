"""Typed results of the face path: detections, crop boxes and the tracked crop.

All coordinates are float pixels of the frame they were measured on, with the
OpenCV convention: pixel ``(i, j)`` has its centre at ``x = j, y = i``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipeline.frame import Image

Box = tuple[float, float, float, float]
"""An axis-aligned box ``(x0, y0, x1, y1)`` in float pixels, ``x1 > x0``, ``y1 > y0``."""

Point = tuple[float, float]

Affine = npt.NDArray[np.float64]
"""A ``(2, 3)`` float64 affine matrix mapping ``[x, y, 1]`` to ``[x', y']``."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found by a detector.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in float pixels of the image passed to ``detect``.
        score: detector confidence in ``[0, 1]``.
        keypoints: facial points ``((x, y), ...)`` in the same pixels, or ``()``
            when the detector gives none. RetinaFace gives 5 (eyes, nose, mouth
            corners), BlazeFace 6 (eyes, nose, mouth, ear tragions).
    """

    box: Box
    score: float
    keypoints: tuple[Point, ...] = ()

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> Point:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def size(self) -> float:
        """Mean of width and height: the face size the crop rule is defined on."""
        return (self.width + self.height) / 2

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class CropBox:
    """A square crop window: centre ``(cx, cy)`` and side, in frame pixels."""

    cx: float
    cy: float
    side: float

    @property
    def box(self) -> Box:
        half = self.side / 2
        return (self.cx - half, self.cy - half, self.cx + half, self.cy + half)


class TrackStatus(enum.Enum):
    """What the tracker knows about the face on a frame.

    TRACKING: the face was followed on this frame: measured by the detector
        (``FaceCrop.detection`` is set) or, between two detections when the
        tracker is configured so, moved by optical flow (``detection`` is None).
    HELD: no face on this frame, but one was seen less than ``hold_seconds``
        ago; the last crop is repeated so a blink of the detector or a hand in
        front of the face does not make the avatar jump.
    LOST: no face for longer than ``hold_seconds`` (or never): there is no
        crop, downstream shows the avatar at rest.
    """

    TRACKING = "tracking"
    HELD = "held"
    LOST = "lost"


@dataclass(frozen=True, slots=True, eq=False)
class FaceCrop:
    """The face crop of one frame, as the face-track stage stores it.

    Attributes:
        status: see `TrackStatus`.
        crop: the smoothed crop window in frame pixels; ``None`` when LOST.
        affine: ``(2, 3)`` matrix mapping frame pixels to crop pixels (its
            inverse, `inverse_affine`, pastes back); ``None`` when LOST.
        image: the crop, ``(size, size, 3)`` uint8 RGB at the model size;
            ``None`` when LOST.
        detection: the raw detection measured on this frame (frame pixels),
            ``None`` when the detector did not find the face on this frame.
        time_s: the frame's capture time in seconds this result belongs to.
    """

    status: TrackStatus
    crop: CropBox | None
    affine: Affine | None
    image: Image | None
    detection: Detection | None
    time_s: float

    @property
    def has_face(self) -> bool:
        return self.status is not TrackStatus.LOST

    def inverse_affine(self) -> Affine:
        """The ``(2, 3)`` matrix mapping crop pixels back to frame pixels."""
        if self.affine is None:
            raise ValueError("a LOST face crop has no affine; check FaceCrop.has_face first")
        return invert_affine(self.affine)


def invert_affine(affine: Affine) -> Affine:
    """Inverse of a ``(2, 3)`` affine matrix, as a ``(2, 3)`` float64 matrix."""
    full = np.vstack([np.asarray(affine, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]
