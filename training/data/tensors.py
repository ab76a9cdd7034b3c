"""Pictures to model tensors: square, resized, ``[3, S, S]`` float in [-1, 1]."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import torch


def square_resize(image: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """Centre-crop ``(H, W, 3)`` to a square, then resize to ``(size, size, 3)``.

    FOMM-style crops are already square; the crop only matters for other
    material. Shrinking uses area averaging (no aliasing), enlarging bicubic.
    """
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(square, (size, size), interpolation=interpolation), np.uint8)


def image_to_tensor(image: npt.NDArray[np.uint8]) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``[3, H, W]`` float32 in [-1, 1]."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return chw.to(torch.float32).div_(127.5).sub_(1.0)


def tensor_to_image(tensor: torch.Tensor) -> npt.NDArray[np.uint8]:
    """Inverse of `image_to_tensor` (clamped): ``[3, H, W]`` -> ``(H, W, 3)`` uint8."""
    hwc = ((tensor.detach().cpu().clamp(-1, 1) + 1.0) * 127.5).round().permute(1, 2, 0)
    return hwc.to(torch.uint8).numpy()
