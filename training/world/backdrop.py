"""The background behind the person.

It has no hard edges (gradients and soft patterns), so it needs no
supersampling: it is computed at no more than `_DETAIL` pixels across and
resized up; the painter composites the anti-aliased person over it.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from training.world._rng import rng
from training.world.identity import Backdrop, BackdropPattern, BackdropStyle

_BLOB_STREAM = 0xB1
_DETAIL = 64


def render_backdrop(backdrop: Backdrop, size: int) -> npt.NDArray[np.uint8]:
    """The background as ``(size, size, 3)`` uint8 RGB."""
    small = _backdrop(backdrop, min(size, _DETAIL))
    if small.shape[0] == size:
        return small
    return np.asarray(cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR), np.uint8)


def _backdrop(backdrop: Backdrop, size: int) -> npt.NDArray[np.uint8]:
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = coords[None, :], coords[:, None]
    mix = _gradient(backdrop.style, x, y)
    a = np.asarray(backdrop.colour_a, np.float32)
    b = np.asarray(backdrop.colour_b, np.float32)
    image = a + mix[..., None] * (b - a)
    weight = _pattern(backdrop, x, y)
    if weight is not None:
        colour = np.asarray(backdrop.pattern_colour, np.float32)
        image = image + (0.45 * weight)[..., None] * (colour - image)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _gradient(style: BackdropStyle, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-pixel blend weight from colour_a (0) to colour_b (1), ``(S, S)``."""
    if style is BackdropStyle.VERTICAL:
        return np.broadcast_to(y, (y.shape[0], x.shape[1]))
    if style is BackdropStyle.HORIZONTAL:
        return np.broadcast_to(x, (y.shape[0], x.shape[1]))
    if style is BackdropStyle.RADIAL:
        return np.clip(np.hypot(x - 0.5, y - 0.4) / 0.75, 0.0, 1.0)
    return np.zeros((y.shape[0], x.shape[1]), np.float32)


def _pattern(backdrop: Backdrop, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Pattern strength in [0, 1], ``(S, S)``, or None for no pattern."""
    period = backdrop.pattern_scale
    if backdrop.pattern is BackdropPattern.STRIPES:
        angle = np.radians(backdrop.pattern_angle)
        phase = (x * np.cos(angle) + y * np.sin(angle)) / period
        return np.clip(2.0 * np.sin(2 * np.pi * phase), 0.0, 1.0)
    if backdrop.pattern is BackdropPattern.TILES:
        tiles = np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / period)
        return np.clip(3.0 * tiles, 0.0, 1.0)
    if backdrop.pattern is BackdropPattern.BLOBS:
        return _blobs(backdrop, x, y)
    return None


def _blobs(backdrop: Backdrop, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A few soft discs, like out-of-focus lights behind the person."""
    g = rng(_BLOB_STREAM, backdrop.pattern_seed)
    count = int(g.integers(4, 9))
    centres = g.uniform(0, 1, (count, 2)).astype(np.float32)
    radius = (backdrop.pattern_scale * g.uniform(0.3, 0.7, count)).astype(np.float32)
    dx = x[None] - centres[:, 0, None, None]  # (count, 1, S)
    dy = y[None] - centres[:, 1, None, None]  # (count, S, 1)
    dist = np.sqrt(dx * dx + dy * dy) / radius[:, None, None]
    return np.clip(1.5 * (1.0 - dist.min(axis=0)), 0.0, 1.0)
