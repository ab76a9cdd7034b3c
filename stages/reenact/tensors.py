"""Device-agnostic picture operations of the avatar path (torch only, any device).

Pictures on the device are ``[1, 3, H, W]`` tensors: uint8 RGB for frames and
canvases, float in ``[-1, 1]`` for model inputs and outputs. The same code
runs on the CPU (tensors are views of numpy arrays where possible) and on a
GPU (inside the calling stage's stream).

The host side: `HostStaging` uploads a numpy frame and downloads a canvas.
On the CPU both are views or a single copy; on CUDA they go through pinned
buffers so the copies are asynchronous in the stage's stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.frame import Image
from stages.face.types import Affine

MAX_SUPERSAMPLE = 4


def image_to_tensor(image: Image) -> Tensor:
    """``(H, W, 3)`` uint8 numpy -> ``[1, 3, H, W]`` uint8 CPU view (no copy)."""
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)


def tensor_to_image(canvas: Tensor) -> Image:
    """``[1, 3, H, W]`` uint8 CPU tensor -> ``(H, W, 3)`` C-contiguous uint8 numpy (a copy).

    A plain memory copy when ``canvas`` is a `new_canvas` (pixel-interleaved storage).
    """
    if canvas.device.type != "cpu" or canvas.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 CPU canvas, got {canvas.dtype} on {canvas.device}")
    return np.array(canvas[0].permute(1, 2, 0).numpy(), dtype=np.uint8, copy=True, order="C")


def new_canvas(size: tuple[int, int], device: torch.device) -> Tensor:
    """A zeroed ``[1, 3, H, W]`` uint8 picture stored pixel-interleaved (``H, W, 3``).

    ``size`` is ``(width, height)``. The storage order is the one of numpy
    frames, so copying a frame in or the canvas out is a plain memory copy
    (a planar canvas made the download a 3 ms transpose at 1280 x 480).
    """
    w, h = size
    return torch.zeros((1, h, w, 3), dtype=torch.uint8, device=device).permute(0, 3, 1, 2)


def to_unit(image: Tensor) -> Tensor:
    """uint8 ``[B, 3, H, W]`` -> float32 in ``[-1, 1]`` (the models' input range)."""
    return image.float().div(127.5).sub_(1.0)


def to_uint8(unit: Tensor) -> Tensor:
    """float ``[B, 3, H, W]`` in about ``[-1, 1]`` -> uint8, clamped and rounded."""
    return unit.add(1.0).mul_(127.5).clamp_(0.0, 255.0).round_().to(torch.uint8)


def affine_grid_for(affine: Affine, out_size: tuple[int, int], in_size: tuple[int, int],
                    device: torch.device) -> Tensor:
    """Sampling grid ``[1, h, w, 2]`` for `grid_sample` (``align_corners=False``).

    ``affine`` ``(2, 3)`` maps *output* pixel coordinates ``(x, y)`` (OpenCV
    convention: pixel ``j`` centred at ``x = j``) to *input* pixel
    coordinates. ``out_size`` and ``in_size`` are ``(width, height)``. The
    grid is built on ``device``; only the six affine numbers cross from the host.
    """
    w, h = out_size
    a = torch.as_tensor(np.asarray(affine, dtype=np.float32)).to(device, non_blocking=True)
    xs = torch.arange(w, dtype=torch.float32, device=device)
    ys = torch.arange(h, dtype=torch.float32, device=device)[:, None]
    src_x = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    src_y = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    # Pixel j spans [j - 0.5, j + 0.5]; grid_sample's -1/+1 are the outer edges.
    gx = (2 * src_x + 1) / in_size[0] - 1
    gy = (2 * src_y + 1) / in_size[1] - 1
    return torch.stack([gx, gy], dim=-1).unsqueeze(0)


def warp_crop(frame: Tensor, affine: Affine, size: int) -> Tensor:
    """Cut a ``size``-square crop from ``frame`` ``[1, 3, H, W]`` uint8 -> float ``[-1, 1]``.

    ``affine`` maps frame pixels to crop pixels (as `stages.face.FaceCrop.affine`).
    When the crop shrinks the face by 2x or more, the crop is rendered at an
    integer multiple of ``size`` and area-averaged, as the host crop does,
    so the encoder does not see aliasing the host path would not have.
    Edge pixels are replicated outside the frame (``padding_mode="border"``).
    Only the frame region under the crop is converted to float.
    """
    a = np.vstack([np.asarray(affine, dtype=np.float64), [0.0, 0.0, 1.0]])
    factor = max(1, min(MAX_SUPERSAMPLE, math.floor(1.0 / abs(a[0, 0]))))
    out = size * factor
    # frame -> crop at `size` -> crop at `size * factor`, pixel centres kept aligned:
    # u' = factor * u + (factor - 1) / 2.
    upscale = np.array([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2], [0, 0, 1]])
    back = np.linalg.inv(upscale @ a)[:2]
    region, back = _source_region(frame, back, out)
    grid = affine_grid_for(back, (out, out), (region.shape[-1], region.shape[-2]), frame.device)
    crop = F.grid_sample(to_unit(region), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)
    return F.avg_pool2d(crop, factor) if factor > 1 else crop


def _source_region(frame: Tensor, back: Affine, out: int) -> tuple[Tensor, Affine]:
    """The part of ``frame`` an ``out``-square warp through ``back`` reads, and ``back`` for it."""
    h, w = frame.shape[-2:]
    corners = np.array([[0, 0, 1], [out - 1, 0, 1], [0, out - 1, 1], [out - 1, out - 1, 1]])
    xy = corners @ np.asarray(back).T  # (4, 2) frame pixels
    x0 = int(np.clip(math.floor(xy[:, 0].min()) - 1, 0, w - 1))
    y0 = int(np.clip(math.floor(xy[:, 1].min()) - 1, 0, h - 1))
    x1 = int(np.clip(math.ceil(xy[:, 0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(math.ceil(xy[:, 1].max()) + 2, y0 + 1, h))
    shifted = np.array(back, dtype=np.float64)
    shifted[:, 2] -= (x0, y0)
    return frame[..., y0:y1, x0:x1], shifted


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``[1, 3, h, w]`` (uint8 or float) to ``size`` ``(width, height)``.

    Bilinear with antialiasing when shrinking; the dtype is kept.
    """
    w, h = size
    if tuple(image.shape[-2:]) == (h, w):
        return image
    shrink = h < image.shape[-2] or w < image.shape[-1]
    out = F.interpolate(image.float(), size=(h, w), mode="bilinear", align_corners=False,
                        antialias=shrink)
    if image.dtype == torch.uint8:
        return out.clamp_(0, 255).round_().to(torch.uint8)
    return out


def keep_for(tensor: Tensor, stream: object) -> None:
    """Tell the CUDA allocator that ``stream`` uses ``tensor`` (made on another stream).

    Without it, a tensor freed by its producer's side (a frame dropped on a
    live edge) could be handed out again while this stream's queued work
    still reads it. A no-op on the CPU and for streams without a torch stream.
    """
    torch_stream = getattr(stream, "torch_stream", None)
    if torch_stream is not None and tensor.device.type == "cuda":
        tensor.record_stream(torch_stream)


class HostStaging:
    """Moves pictures between host numpy arrays and the device.

    On the CPU, `upload` is a zero-copy view and `download` one memory copy.
    On CUDA, each direction goes through a pinned buffer (allocated once per
    size) with a non-blocking copy in the current stream. An upload waits
    for the previous upload's copy before refilling the pinned buffer;
    `download` calls ``synchronize`` (the stage stream's) before reading
    the pinned buffer, because the numpy array it returns must be complete
    when the frame leaves the stage.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pinned: dict[str, Tensor] = {}
        self._copied: Any = None  # torch.cuda.Event after the last upload's copy

    def upload(self, image: Image) -> Tensor:
        """``(H, W, 3)`` uint8 -> ``[1, 3, H, W]`` uint8 on the device."""
        if self.device.type == "cpu":
            return image_to_tensor(image)
        staged = self._staging("in", image.shape)
        if self._copied is not None:
            self._copied.synchronize()  # the last copy out of this buffer is done
        staged.copy_(torch.from_numpy(image))
        on_device = staged.to(self.device, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record()
        return on_device.permute(2, 0, 1).unsqueeze(0)

    def download(self, canvas: Tensor, synchronize: Callable[[], None]) -> Image:
        """``[1, 3, H, W]`` uint8 on the device -> ``(H, W, 3)`` uint8 numpy."""
        if canvas.device.type == "cpu":
            return tensor_to_image(canvas)
        pixels = canvas[0].permute(1, 2, 0)
        staged = self._staging("out", tuple(pixels.shape))
        staged.copy_(pixels, non_blocking=True)
        synchronize()
        return np.array(staged.numpy(), copy=True)

    def _staging(self, slot: str, shape: tuple[int, ...]) -> Tensor:
        buffer = self._pinned.get(slot)
        if buffer is None or tuple(buffer.shape) != tuple(shape):
            buffer = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            self._pinned[slot] = buffer
        return buffer
