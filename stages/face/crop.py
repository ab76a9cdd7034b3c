"""ViCoFace's inference crop as an affine warp, with its inverse for paste-back.

The rule (ViCoFace ``gen_api.crop_roi``): a square centred on the RetinaFace
box, side ``1.6 x (w + h) / 2``, warped to the model size. Coordinates use
OpenCV's convention (pixel ``j`` centred at ``x = j``); the crop window's
edges map to the outer edges of the output pixels, so the box centre lands on
the centre of the output grid.

Interpolation: bicubic, as ViCoFace's own preprocessing. It costs about
0.5 ms more than bilinear per 256 x 256 crop on one core (measured: 0.35 vs
0.55-0.8 ms), nothing beside the generator, and keeps the upscaled crops of
a small webcam face sharper. When the crop shrinks the face by 2x or more
(a large face in a high-resolution frame) the warp first renders an integer
multiple of the model size and area-averages it down, because a point-sampled
warp aliases there (moiré on hair and textiles that the motion encoder reads
as motion).

Border: a crop that reaches past the frame is filled by replicating the edge
pixels (`CropConfig.border`). A constant black band would be a hard edge that
moves with the crop; replicated edges are low-contrast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from pipeline.frame import Image, check_image
from stages.face.types import Affine, CropBox, Detection, invert_affine

_INTERPOLATION = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}
_BORDER = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}
_MAX_SUPERSAMPLE = 4


@dataclass(frozen=True, slots=True)
class CropConfig:
    """How the face crop is cut.

    Attributes:
        size: output side in pixels (the model's input size).
        scale: crop side over the mean box size ``(w + h) / 2`` (1.6 in ViCoFace).
        interpolation: ``"cubic"`` (ViCoFace's choice) or ``"linear"``.
        border: ``"replicate"`` edge pixels or ``"constant"`` black where the
            crop leaves the frame.
    """

    size: int = 256
    scale: float = 1.6
    interpolation: Literal["cubic", "linear"] = "cubic"
    border: Literal["replicate", "constant"] = "replicate"

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"crop size must be at least 8 pixels, got {self.size}")
        if self.scale <= 0:
            raise ValueError(f"crop scale must be positive, got {self.scale}")
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(
                f"interpolation must be 'cubic' or 'linear', not {self.interpolation!r}"
            )
        if self.border not in _BORDER:
            raise ValueError(f"border must be 'replicate' or 'constant', not {self.border!r}")


def crop_box_for(detection: Detection, scale: float = 1.6) -> CropBox:
    """ViCoFace's crop window for a (RetinaFace-convention) detection."""
    cx, cy = detection.center
    return CropBox(cx=cx, cy=cy, side=scale * detection.size)


def crop_affine(crop: CropBox, size: int) -> Affine:
    """``(2, 3)`` matrix mapping frame pixels to pixels of a ``size`` x ``size`` crop.

    The window's left/top edge ``c - side / 2`` maps to ``-0.5`` (the outer
    edge of output pixel 0) and its right/bottom edge to ``size - 0.5``.
    """
    if crop.side <= 0:
        raise ValueError(f"crop side must be positive, got {crop.side}")
    k = size / crop.side
    x0, y0 = crop.cx - crop.side / 2, crop.cy - crop.side / 2
    return np.array([[k, 0.0, -x0 * k - 0.5], [0.0, k, -y0 * k - 0.5]], dtype=np.float64)


def warp_crop(image: Image, crop: CropBox, config: CropConfig | None = None) -> Image:
    """Cut ``crop`` out of ``image`` ``(H, W, 3)`` uint8; returns ``(size, size, 3)`` uint8."""
    config = config or CropConfig()
    image = check_image(image)
    factor = supersample_factor(crop.side, config.size)
    affine = crop_affine(crop, config.size * factor)
    out = cv2.warpAffine(
        image,
        affine,
        (config.size * factor, config.size * factor),
        flags=_INTERPOLATION[config.interpolation],
        borderMode=_BORDER[config.border],
    )
    if factor > 1:
        out = cv2.resize(out, (config.size, config.size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out)


def supersample_factor(side: float, size: int) -> int:
    """Integer render multiple so the warp itself never shrinks by 2x or more."""
    return max(1, min(_MAX_SUPERSAMPLE, math.floor(side / size)))


def paste_back_affine(crop: CropBox, size: int) -> Affine:
    """``(2, 3)`` matrix mapping crop pixels back to frame pixels (inverse of `crop_affine`)."""
    return invert_affine(crop_affine(crop, size))
