"""The study's pictures: the stage-1 curve, arm A against arm B pair by pair, and a grid.

Drawn with OpenCV (no plotting library ships with vicocam): `plot` puts
point sets and lines on float axes with round ticks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch.nn.functional as F
from torch import Tensor

from training.samples import save_sample_grid

SIZE = (560, 520)  # width, height
MARGIN = (70, 40, 20, 56)  # left, top, right, bottom
INK, GRID = (40, 40, 40), (225, 225, 225)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Layer:
    """Points drawn as dots (``line=False``) or joined by a line, in BGR ``colour``."""

    label: str
    points: Sequence[tuple[float, float]]
    colour: tuple[int, int, int]
    line: bool = False


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def plot(
    path: Path,
    layers: Sequence[Layer],
    title: str,
    x_label: str,
    y_label: str,
    legend_low: bool = False,
) -> Path:
    """Draw ``layers`` on shared axes into a PNG at ``path``; returns ``path``.

    The legend sits in the top left corner, or the bottom right with ``legend_low``.
    """
    xs = [x for layer in layers for x, _ in layer.points]
    ys = [y for layer in layers for _, y in layer.points]
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    image = np.full((SIZE[1], SIZE[0], 3), 255, np.uint8)
    left, top, right, bottom = MARGIN
    width, height = SIZE[0] - left - right, SIZE[1] - top - bottom

    def pixel(x: float, y: float) -> tuple[int, int]:
        fx = (x - x_ticks[0]) / (x_ticks[-1] - x_ticks[0])
        fy = (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0])
        return round(left + fx * width), round(top + height - fy * height)

    for x in x_ticks:
        cv2.line(image, pixel(x, y_ticks[0]), pixel(x, y_ticks[-1]), GRID, 1)
        at = pixel(x, y_ticks[0])
        _text(image, f"{x:g}", (at[0] - 12, at[1] + 18), 0.4)
    for y in y_ticks:
        cv2.line(image, pixel(x_ticks[0], y), pixel(x_ticks[-1], y), GRID, 1)
        at = pixel(x_ticks[0], y)
        _text(image, f"{y:g}", (4, at[1] + 4), 0.4)
    cv2.rectangle(image, pixel(x_ticks[0], y_ticks[-1]), pixel(x_ticks[-1], y_ticks[0]), INK, 1)
    for layer in layers:
        points = [pixel(x, y) for x, y in layer.points]
        if layer.line:
            cv2.polylines(
                image, [np.asarray(points, np.int32)], False, layer.colour, 2, cv2.LINE_AA
            )
        for p in points:
            cv2.circle(image, p, 3, layer.colour, -1, cv2.LINE_AA)
    x0 = left + width - 300 if legend_low else left + 14
    y0 = top + height - 12 - 18 * (len(layers) - 1) if legend_low else top + 16
    for i, layer in enumerate(layers):
        y = y0 + 18 * i
        cv2.circle(image, (x0, y - 4), 4, layer.colour, -1, cv2.LINE_AA)
        _text(image, layer.label, (x0 + 10, y), 0.42)
    _text(image, title, (left, 24), 0.5)
    _text(image, x_label, (left + width // 2 - 60, SIZE[1] - 12), 0.45)
    _text(image, y_label, (4, top - 8), 0.42)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path


def _text(image: np.ndarray, text: str, at: tuple[int, int], scale: float) -> None:
    cv2.putText(image, text, at, FONT, scale, INK, 1, cv2.LINE_AA)


BLUE, ORANGE, GREY, GREEN = (200, 120, 40), (30, 130, 240), (150, 150, 150), (60, 160, 60)


def stage1_curve(path: Path, curve: Sequence[tuple[int, float]], stopped_at: int | None) -> Path:
    """Validation cross PSNR over stage-1 steps."""
    layers = [Layer("validation cross PSNR", [(float(s), p) for s, p in curve], BLUE, line=True)]
    if stopped_at is not None:
        psnr = dict(curve)[stopped_at]
        layers.append(
            Layer(
                f"plateau: stage 2 starts here ({stopped_at})", [(float(stopped_at), psnr)], ORANGE
            )
        )
    return plot(path, layers, "Stage 1: LIA self-reenactment", "step", "dB", legend_low=True)


def pair_scatter(path: Path, arm_a: Tensor, arm_b: Tensor, mismatch: Tensor, score: str) -> Path:
    """One dot per held-out pair: arm A's ``score`` (x) against arm B's (y), y = x drawn."""
    keep = ~(arm_a.isnan() | arm_b.isnan())
    pairs = [(float(a), float(b)) for a, b in zip(arm_a, arm_b, strict=True)]
    rest = [p for p, k, m in zip(pairs, keep, mismatch, strict=True) if k and not m]
    odd = [p for p, k, m in zip(pairs, keep, mismatch, strict=True) if k and m]
    low = min(min(p) for p in rest + odd)
    high = max(max(p) for p in rest + odd)
    layers = [
        Layer("other pairs", rest, GREY),
        Layer("shape-mismatch pairs", odd, ORANGE),
        Layer("same score (below: ViCoFace better)", [(low, low), (high, high)], GREEN, line=True),
    ]
    return plot(
        path, layers, f"{score} per held-out pair (mean over seeds)", "LIA arm", "ViCoFace arm"
    )


def mismatch_grid(path: Path, columns: Sequence[Tensor], scale: int = 4) -> None:
    """driver | avatar | LIA | ViCoFace | ground truth, one shape-mismatch pair a row,
    each picture enlarged ``scale`` times (nearest neighbour: no detail is invented)."""
    enlarged = [F.interpolate(c, scale_factor=scale, mode="nearest") for c in columns]
    save_sample_grid(path, [enlarged])


__all__ = ["Layer", "mismatch_grid", "nice_ticks", "pair_scatter", "plot", "stage1_curve"]
