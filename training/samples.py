"""PNG grids of training / evaluation samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor


def to_uint8(images: Tensor) -> npt.NDArray[np.uint8]:
    """``[B, 3, H, W]`` in [-1, 1] -> ``[B, H, W, 3]`` uint8 RGB (clamped)."""
    scaled = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def grid_image(blocks: Sequence[Sequence[Tensor]], gap: int = 2) -> npt.NDArray[np.uint8]:
    """Rows of columns: each block is a list of ``[n, 3, S, S]`` columns; blocks stack down.

    Row ``i`` of a block shows sample ``i`` of every column left to right.
    """
    rows: list[npt.NDArray[np.uint8]] = []
    for columns in blocks:
        tiles = [to_uint8(c) for c in columns]
        for i in range(tiles[0].shape[0]):
            parts = []
            for tile in tiles:
                parts += [tile[i], np.full((tile.shape[1], gap, 3), 255, np.uint8)]
            rows.append(np.concatenate(parts[:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    padded = [
        np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    return np.concatenate(padded, axis=0)


def save_png(path: str | Path, image: npt.NDArray[np.uint8]) -> None:
    """Write an RGB uint8 image as PNG (creates the folder)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
        raise OSError(f"could not write {path}")


def save_sample_grid(path: str | Path, blocks: Sequence[Sequence[Tensor]]) -> None:
    """``grid_image(blocks)`` saved to ``path``."""
    save_png(path, grid_image(blocks))


__all__ = ["grid_image", "save_png", "save_sample_grid", "to_uint8"]
