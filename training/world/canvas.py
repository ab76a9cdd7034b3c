"""A supersampled painter that keeps a region label per pixel.

Shapes are filled at ``supersample`` times the output size without OpenCV's
own anti-aliasing, so the colour canvas and the label map agree pixel for
pixel; `Painter.finish` area-downsamples the colour (the anti-aliasing) and
point-samples the labels. Coordinates come in frame units ([0, 1] across the
picture) and are drawn with 4 fractional bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import cv2
import numpy as np
import numpy.typing as npt

from training.world.identity import Colour

_SHIFT = 4
_ONE = 1 << _SHIFT

Points = npt.NDArray[np.float64]
"""``(N, 2)`` frame coordinates."""


class Region(IntEnum):
    """Label values of the region map; every pixel has exactly one."""

    BACKGROUND = 0
    TORSO = 1  # neck and clothing
    HAIR = 2
    FACE = 3  # skin of face and ears, with eyes, brows, nose and mouth


class Painter:
    """Draws polygons, lines and circles into a colour canvas and a label map.

    A shape given a ``region`` also writes that label; a shape without one
    (eyes, brows, patterns) only changes colour, so it keeps the label of
    whatever it is drawn on, and any part of it that lands on background is
    dropped by `finish`.
    """

    def __init__(self, size: int, supersample: int) -> None:
        self.size = size
        self.supersample = supersample
        side = size * supersample
        self._scale = float(side)
        # RGB plus an alpha channel that every shape sets to 255.
        self.colour = np.zeros((side, side, 4), np.uint8)
        self.labels = np.zeros((side, side), np.uint8)

    def px(self, points: Points) -> npt.NDArray[np.int32]:
        """Frame coordinates to fixed-point canvas pixels (pixel centres at integers)."""
        return np.round((np.asarray(points) * self._scale - 0.5) * _ONE).astype(np.int32)

    def length(self, frame_units: float) -> int:
        """A length in frame units as whole canvas pixels (at least 1)."""
        return max(1, round(frame_units * self._scale))

    def polygons(
        self, polys: Sequence[Points], colour: Colour, region: Region | None = None
    ) -> None:
        """Fill polygons (each ``(N, 2)``, any winding, may be non-convex).

        Each is filled on its own: OpenCV fills several contours of one call
        with the even-odd rule, which would punch holes where they overlap.
        A self-intersecting polygon still fills even-odd.
        """
        for poly in polys:
            pts = [self.px(poly).reshape(-1, 1, 2)]
            cv2.fillPoly(self.colour, pts, (*colour, 255), cv2.LINE_8, _SHIFT)
            if region is not None:
                cv2.fillPoly(self.labels, pts, int(region), cv2.LINE_8, _SHIFT)

    def polygon(self, points: Points, colour: Colour, region: Region | None = None) -> None:
        self.polygons([points], colour, region)

    def lines(self, polylines: Sequence[Points], colour: Colour, width: float) -> None:
        """Open polylines, ``width`` in frame units; colour only."""
        pts = [self.px(p).reshape(-1, 1, 2) for p in polylines]
        thickness = self.length(width)
        cv2.polylines(self.colour, pts, False, (*colour, 255), thickness, cv2.LINE_AA, _SHIFT)

    def circles(
        self,
        centres: Points,
        radius: float | npt.NDArray[np.float64],
        colour: Colour,
        region: Region | None = None,
    ) -> None:
        """Filled circles; ``radius`` in frame units, one for all or one each."""
        centres_px = self.px(centres).reshape(-1, 2)
        radii = np.broadcast_to(np.asarray(radius, float), (len(centres_px),))
        for (x, y), r in zip(centres_px.tolist(), radii.tolist(), strict=True):
            r_px = max(1, round(r * self._scale * _ONE))
            cv2.circle(self.colour, (x, y), r_px, (*colour, 255), -1, cv2.LINE_8, _SHIFT)
            if region is not None:
                cv2.circle(self.labels, (x, y), r_px, int(region), -1, cv2.LINE_8, _SHIFT)

    def coverage(self, regions: Sequence[Region]) -> npt.NDArray[np.float32]:
        """Anti-aliased share of each output pixel covered by ``regions``, ``(S, S)``."""
        table = np.zeros(256, np.uint8)
        table[np.asarray(regions, np.intp)] = 255
        inside = cv2.LUT(self.labels, table)
        small = cv2.resize(inside, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return np.asarray(small, np.float32) * np.float32(1 / 255)

    def finish(
        self, background: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """Composite over ``background`` ``(S, S, 3)``; returns ``(image, labels)`` at S."""
        s = self.size
        covered = cv2.threshold(self.labels, 0, 255, cv2.THRESH_BINARY)[1]
        # Shapes drawn without a region (patterns, features at steep angles)
        # may spill onto background pixels; masking removes the spill and
        # leaves a premultiplied foreground (background pixels black).
        fg = cv2.bitwise_and(self.colour, self.colour, mask=covered)
        small = cv2.resize(fg, (s, s), interpolation=cv2.INTER_AREA)
        fg, alpha = small[..., :3], small[..., 3]
        inv = (255 - alpha.astype(np.uint16))[..., None]
        image = fg.astype(np.uint16) + (background.astype(np.uint16) * inv + 127) // 255
        centre = self.supersample // 2
        labels = self.labels[centre :: self.supersample, centre :: self.supersample]
        return np.minimum(image, 255).astype(np.uint8), np.ascontiguousarray(labels)
