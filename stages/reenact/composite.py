"""Compositing geometry: where the avatar goes in the output picture, and paste-back.

Three layouts fill a rectangular *region* of the output canvas:

* crop: the generated ``S x S`` face crop scaled to the largest centred
  square that fits (letterboxed with the background colour);
* paste: the avatar portrait fitted into the region, with the generated crop
  warped back through the inverse of the portrait's crop affine and blended
  through a feathered mask. Outside the mask (weight exactly 0) the pixels
  are the fitted portrait's, bit for bit;
* frame: the driving picture fitted into the region (the left half of
  side-by-side).

Everything here is torch on the canvas's device. A `PasteLayout` (the fitted
portrait, the sampling grid and the mask for the region the crop covers) is
built once per avatar and region size, so a frame costs one small
``grid_sample`` and a blend over that region only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from stages.face.types import Affine, invert_affine
from stages.reenact.tensors import affine_grid_for, new_canvas, resize, to_uint8

Size = tuple[int, int]
"""``(width, height)`` in pixels."""


@dataclass(frozen=True, slots=True)
class Rect:
    """An integer pixel rectangle ``x, y, w, h`` (top-left corner and size)."""

    x: int
    y: int
    w: int
    h: int

    def view(self, canvas: Tensor) -> Tensor:
        """The ``[1, 3, h, w]`` view of ``canvas`` under this rectangle."""
        return canvas[..., self.y : self.y + self.h, self.x : self.x + self.w]


def fit_rect(content: Size, box: Size) -> Rect:
    """The largest centred rectangle with ``content``'s aspect inside ``box`` (contain)."""
    cw, ch = content
    bw, bh = box
    if min(cw, ch, bw, bh) <= 0:
        raise ValueError(f"sizes must be positive, got content {content} and box {box}")
    scale = min(bw / cw, bh / ch)
    w, h = max(1, min(bw, round(cw * scale))), max(1, min(bh, round(ch * scale)))
    return Rect((bw - w) // 2, (bh - h) // 2, w, h)


def split_side_by_side(size: Size) -> tuple[Rect, Rect]:
    """``(left, right)`` halves of a canvas of ``size`` (the right one gets an odd column)."""
    w, h = size
    half = w // 2
    return Rect(0, 0, half, h), Rect(half, 0, w - half, h)


def feather_mask(size: int, margin: float, feather: float) -> Tensor:
    """A ``[1, 1, size, size]`` float mask over the crop: 0 at the border, 1 inside.

    Zero within ``margin x size`` of the crop edge, rising over
    ``feather x size`` pixels with a smoothstep (no visible seam), one
    further in. Fractions of the crop side, so any model size behaves alike.
    """
    if not 0 <= margin < 0.5 or not 0 < feather < 0.5 or margin + feather >= 0.5:
        raise ValueError(
            f"mask margin {margin} and feather {feather} must be >= 0, > 0, and sum below 0.5"
        )
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    edge = torch.minimum(centres, size - centres) / size  # distance to the nearest edge
    ramp = ((edge - margin) / feather).clamp(0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)
    return torch.minimum(ramp[:, None], ramp[None, :])[None, None]


@dataclass(frozen=True, slots=True, eq=False)
class PasteLayout:
    """Everything paste-back needs for one avatar in one region, on the device.

    Attributes:
        base: ``[1, 3, h, w]`` uint8: the portrait fitted into the region,
            background colour around it.
        roi: the part of the region the crop can touch (region pixels).
        grid: ``[1, roi.h, roi.w, 2]`` sampling grid into the ``S x S`` crop.
        mask: ``[1, 1, roi.h, roi.w]`` blend weights (0 outside the crop).
    """

    base: Tensor
    roi: Rect
    grid: Tensor
    mask: Tensor


def paste_layout(
    portrait: Tensor,
    crop_affine: Affine,
    crop_size: int,
    region: Size,
    crop_mask: Tensor,
    background: tuple[int, int, int] = (0, 0, 0),
) -> PasteLayout:
    """Build the `PasteLayout` of ``portrait`` ``[1, 3, H, W]`` uint8 for a region of ``region``.

    ``crop_affine`` maps portrait pixels to crop pixels (the avatar's
    `stages.face.FaceCrop.affine`); ``crop_mask`` is the
    ``[1, 1, S, S]`` `feather_mask`.
    """
    height, width = portrait.shape[-2:]
    place = fit_rect((width, height), region)
    base = fill(region, background, portrait.device)
    place.view(base).copy_(resize(portrait, (place.w, place.h)))
    scale = place.w / width
    to_region = np.array([[scale, 0.0, place.x + 0.5 * scale - 0.5],
                          [0.0, place.h / height, place.y + 0.5 * place.h / height - 0.5]])
    region_to_crop = _compose(crop_affine, invert_affine(to_region))
    roi = _crop_footprint(invert_affine(region_to_crop), crop_size, region)
    shift = np.array([[1.0, 0.0, roi.x], [0.0, 1.0, roi.y]])
    grid = affine_grid_for(_compose(region_to_crop, shift), (roi.w, roi.h),
                           (crop_size, crop_size), portrait.device)
    mask = F.grid_sample(crop_mask.to(portrait.device), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)
    return PasteLayout(base, roi, grid, mask)


def _compose(outer: Affine, inner: Affine) -> Affine:
    """The ``(2, 3)`` affine ``outer(inner(p))``."""
    full = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return np.asarray(full[:2], dtype=np.float64)


def _crop_footprint(crop_to_region: Affine, crop_size: int, region: Size) -> Rect:
    """Bounding rectangle, clipped to the region, of the crop square mapped into the region."""
    lo, hi = -0.5, crop_size - 0.5
    corners = np.array([[lo, lo, 1], [hi, lo, 1], [lo, hi, 1], [hi, hi, 1]])
    xy = corners @ np.asarray(crop_to_region).T
    x0 = int(np.clip(math.floor(xy[:, 0].min()), 0, region[0] - 1))
    y0 = int(np.clip(math.floor(xy[:, 1].min()), 0, region[1] - 1))
    x1 = int(np.clip(math.ceil(xy[:, 0].max()) + 1, x0 + 1, region[0]))
    y1 = int(np.clip(math.ceil(xy[:, 1].max()) + 1, y0 + 1, region[1]))
    return Rect(x0, y0, x1 - x0, y1 - y0)


def fill(size: Size, colour: tuple[int, int, int], device: torch.device) -> Tensor:
    """A ``[1, 3, h, w]`` uint8 picture of one colour (stored like `new_canvas`)."""
    canvas = new_canvas(size, device)
    _fill_into(canvas, colour)
    return canvas


def paste(layout: PasteLayout, face: Tensor, out: Tensor) -> None:
    """Write the portrait with ``face`` ``[1, 3, S, S]`` (float, ``[-1, 1]``) pasted into ``out``.

    ``out`` is the ``[1, 3, h, w]`` uint8 region (a view of the canvas).
    Where the mask is 0 the result is ``layout.base`` exactly.
    """
    out.copy_(layout.base)
    target = layout.roi.view(out)
    warped = F.grid_sample(face.float(), layout.grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    warped = warped.add_(1.0).mul_(127.5).clamp_(0.0, 255.0)
    below = target.float()
    blended = below.add_(warped.sub_(below).mul_(layout.mask))
    target.copy_(blended.round_().to(torch.uint8))


def place_crop(face: Tensor, out: Tensor, background: tuple[int, int, int]) -> None:
    """Write ``face`` ``[1, 3, S, S]`` float, scaled to the largest centred square, into ``out``."""
    h, w = out.shape[-2:]
    rect = fit_rect((face.shape[-1], face.shape[-2]), (w, h))
    _fill_into(out, background)
    rect.view(out).copy_(to_uint8(resize(face.float(), (rect.w, rect.h))))


def place_frame(frame: Tensor, out: Tensor, background: tuple[int, int, int]) -> None:
    """Write ``frame`` ``[1, 3, H, W]`` uint8, fitted (letterboxed), into ``out``."""
    h, w = out.shape[-2:]
    rect = fit_rect((frame.shape[-1], frame.shape[-2]), (w, h))
    if (rect.w, rect.h) != (w, h):
        _fill_into(out, background)
    rect.view(out).copy_(resize(frame, (rect.w, rect.h)))


def _fill_into(out: Tensor, colour: tuple[int, int, int]) -> None:
    out.copy_(torch.tensor(colour, dtype=torch.uint8, device=out.device).view(1, 3, 1, 1))
