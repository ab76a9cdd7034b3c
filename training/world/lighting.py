"""Soft shading of the head: brighter where the face turns to the light.

A flat-coloured head reads as a cut-out; real faces darken towards their
silhouette and on the side away from the key light. This approximates that
with a smooth multiplicative field centred on the front of the head (so it
follows yaw, pitch, roll and translation), applied to face and hair through
their anti-aliased coverage. It runs at output size on the head's bounding
box only.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from training.world.scene import Scene

_FALLOFF = 0.3  # darkening at the silhouette
_KEY = 0.08  # brightening towards the light at the upper left


def shade_head(
    image: npt.NDArray[np.uint8], coverage: npt.NDArray[np.float32], scene: Scene
) -> npt.NDArray[np.uint8]:
    """Shade ``image`` ``(S, S, 3)`` where ``coverage`` ``(S, S)`` marks the head."""
    size = image.shape[0]
    head, scale = scene.head, scene.motion.scale
    centre = scene.project(np.array([0.0, 0.15 * head.rx, 0.6 * head.depth])) * size - 0.5
    ax = 1.05 * head.rx * scale * size
    ay = (head.crown * scale * size, head.chin * scale * size)
    x0, x1 = _span(centre[0], 1.8 * ax, size)
    y0, y1 = _span(centre[1], 1.8 * max(ay), size)
    if x1 <= x0 or y1 <= y0:
        return image
    # The field is smooth: evaluate it every `step` pixels and resize up.
    step = max(1, size // 64)
    xs = np.arange(x0, x1, step, dtype=np.float32)[None, :] - centre[0]
    ys = np.arange(y0, y1, step, dtype=np.float32)[:, None] - centre[1]
    light = _light(xs, ys, ax, ay, np.radians(scene.motion.roll))
    if step > 1:
        light = np.asarray(cv2.resize(light, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR))
    factor = 1.0 + coverage[y0:y1, x0:x1] * (light - 1.0)
    out = image.copy()
    patch = out[y0:y1, x0:x1].astype(np.float32) * factor[..., None]
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    return out


def _light(
    xs: npt.NDArray[np.float32],
    ys: npt.NDArray[np.float32],
    ax: float,
    ay: tuple[float, float],
    roll: float,
) -> npt.NDArray[np.float32]:
    """Light factor on a grid of pixel offsets from the head centre, ``(1, W)`` x ``(H, 1)``.

    ``ax`` is the head half-width and ``ay`` its height above and below the
    centre, in pixels; ``roll`` in radians tilts the ellipse with the head.
    """
    along = (xs * np.cos(roll) + ys * np.sin(roll)) / ax
    down = -xs * np.sin(roll) + ys * np.cos(roll)
    down = down / np.where(down < 0, ay[0], ay[1])
    dist = np.sqrt(along**2 + down**2)
    ramp = np.clip((dist - 0.45) / 0.7, 0.0, 1.0)
    light = 1.0 - _FALLOFF * ramp * ramp * (3 - 2 * ramp) - _KEY * (0.7 * along + 0.4 * down)
    return np.ascontiguousarray(light, np.float32)


def _span(centre: float, half: float, size: int) -> tuple[int, int]:
    return max(0, int(np.floor(centre - half))), min(size, int(np.ceil(centre + half)) + 1)
