"""Optical-flow box propagation: the cheap step between two region detections.

A 4 x 4 grid of points over the inner half of the last box (the face's own
texture, not the background around it) is followed by pyramidal Lucas-Kanade;
the box moves by the median point motion and scales by the median ratio of
point-pair distances (both medians shrug off a few points lost on an eyelid
or a lip). Used only when `FaceTrackerConfig.detect_every` > 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from stages.face.types import Detection

Grey = npt.NDArray[np.uint8]
"""A ``(H, W)`` uint8 grey picture."""

_GRID = 4
_MIN_POINTS = 6


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Lucas-Kanade settings: window side in pixels and pyramid levels."""

    window: int = 21
    levels: int = 3


def grid_points(detection: Detection) -> npt.NDArray[np.float32]:
    """``(16, 1, 2)`` float32 points over the inner half of the box."""
    x0, y0, x1, y1 = detection.box
    w, h = x1 - x0, y1 - y0
    xs = np.linspace(x0 + w / 4, x1 - w / 4, _GRID)
    ys = np.linspace(y0 + h / 4, y1 - h / 4, _GRID)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32).reshape(-1, 1, 2)


def propagate(
    previous: Grey, current: Grey, detection: Detection, config: FlowConfig | None = None
) -> Detection | None:
    """``detection`` (found on ``previous``) moved to ``current``, or ``None`` if flow failed.

    The returned detection keeps the old score and carries no keypoints (they
    were not measured on this picture).
    """
    config = config or FlowConfig()
    points = grid_points(detection)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        previous,
        current,
        points,
        points.copy(),
        winSize=(config.window, config.window),
        maxLevel=config.levels,
    )
    ok = np.asarray(status).ravel() == 1
    if int(ok.sum()) < _MIN_POINTS:
        return None
    before, after = points.reshape(-1, 2)[ok], np.asarray(moved).reshape(-1, 2)[ok]
    shift = np.median(after - before, axis=0)
    scale = _median_scale(before, after)
    (cx, cy), half_w, half_h = detection.center, detection.width / 2, detection.height / 2
    ncx, ncy = cx + float(shift[0]), cy + float(shift[1])
    box = (ncx - scale * half_w, ncy - scale * half_h, ncx + scale * half_w, ncy + scale * half_h)
    return replace(detection, box=box, keypoints=())


def _median_scale(before: npt.NDArray[np.float32], after: npt.NDArray[np.float32]) -> float:
    """Median ratio of pairwise distances after / before (1 when undefined)."""
    i, j = np.triu_indices(len(before), k=1)
    d0 = np.linalg.norm(before[i] - before[j], axis=1)
    d1 = np.linalg.norm(after[i] - after[j], axis=1)
    valid = d0 > 1e-3
    return float(np.median(d1[valid] / d0[valid])) if valid.any() else 1.0
