"""Small line charts for benchmark results, drawn with OpenCV (no plotting library needed).

`line_chart` draws panels side by side (or in rows of ``columns``), each with
its series, an optional dashed goal line, axes with round ticks and a legend
in the top right corner (the y axis reaches high enough that no point lies
under it), and writes a PNG.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PANEL = (520, 360)  # width, height of one panel in pixels
MARGIN = (64, 40, 24, 52)  # left, top, right, bottom
COLOURS = ((200, 90, 30), (40, 120, 230), (60, 160, 60), (150, 60, 160))  # BGR
INK = (40, 40, 40)
GRID = (225, 225, 225)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MAX_X_TICKS = 15  # more would overlap: every 2nd, 3rd... whole number is marked instead


@dataclass(frozen=True, slots=True)
class Series:
    """One line: its legend label and ``(x, y)`` points."""

    label: str
    points: Sequence[tuple[float, float]]


Panel = tuple[str, Sequence[Series], float | None]  # title, series, goal line (or None)


def line_chart(path: Path, panels: Sequence[Panel], x_label: str,
               columns: int | None = None) -> Path:
    """Draw ``panels`` into a PNG at ``path``, ``columns`` to a row (all in one row
    by default); returns ``path``."""
    images = [_panel(title, series, goal, x_label) for title, series, goal in panels]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), _grid(images, columns or len(images))):
        raise OSError(f"could not write the chart {path}")
    return path


def _grid(images: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Rows of ``columns`` panels; the last row padded with blank panels."""
    blank = np.full_like(images[0], 255)
    padded = [*images, *[blank] * (-len(images) % columns)]
    rows = [np.hstack(padded[i:i + columns]) for i in range(0, len(padded), columns)]
    return np.vstack(rows)


@dataclass(frozen=True, slots=True)
class _Axes:
    x0: float
    x1: float
    y0: float
    y1: float

    def to_pixel(self, x: float, y: float) -> tuple[int, int]:
        left, top, right, bottom = MARGIN
        w, h = PANEL[0] - left - right, PANEL[1] - top - bottom
        px = left + (x - self.x0) / (self.x1 - self.x0) * w
        py = top + h - (y - self.y0) / (self.y1 - self.y0) * h
        return round(px), round(py)


def _panel(title: str, series: Sequence[Series], goal: float | None, x_label: str) -> np.ndarray:
    image = np.full((PANEL[1], PANEL[0], 3), 255, np.uint8)
    axes = _axes_for(series, goal, _legend_rows(series, goal))
    _draw_grid(image, axes)
    if goal is not None:
        _dashed(image, axes.to_pixel(axes.x0, goal), axes.to_pixel(axes.x1, goal))
    for colour, line in zip(COLOURS, series, strict=False):
        _draw_series(image, axes, line, colour)
    _text(image, title, (MARGIN[0], 24), 0.55)
    _text(image, x_label, (PANEL[0] // 2 - 50, PANEL[1] - 10), 0.45)
    _legend(image, series, goal is not None)
    return image


def _axes_for(series: Sequence[Series], goal: float | None, legend_rows: int = 0) -> _Axes:
    """Axes from 0 up to above every point and the goal, with headroom for the legend."""
    xs = [x for s in series for x, _ in s.points] or [0.0, 1.0]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)] or [0.0]
    ys += [] if goal is None else [goal]
    x0, x1 = min(xs), max(xs)
    height = PANEL[1] - MARGIN[1] - MARGIN[3]
    free = 1 - _legend_bottom(legend_rows) / height  # the plot's share below the legend
    y1 = _round_up(max(ys) * max(1.1, 1 / free) or 1.0)
    return _Axes(x0, x1 if x1 > x0 else x0 + 1, 0.0, y1)


def _legend_rows(series: Sequence[Series], goal: float | None) -> int:
    return min(len(series), len(COLOURS)) + (goal is not None)


def _legend_baseline(row: int) -> int:
    """Pixels from the plot's top to the text baseline of the legend's ``row`` (from 0)."""
    return 16 + 18 * row


def _legend_bottom(rows: int) -> int:
    """Pixels from the plot's top to just below a legend of ``rows`` rows."""
    return 0 if rows == 0 else _legend_baseline(rows - 1) + 8


def _round_up(value: float) -> float:
    step = 10 ** math.floor(math.log10(value))
    return math.ceil(value / step) * step


def _draw_grid(image: np.ndarray, axes: _Axes) -> None:
    for i in range(6):
        y = axes.y0 + (axes.y1 - axes.y0) * i / 5
        left, right = axes.to_pixel(axes.x0, y), axes.to_pixel(axes.x1, y)
        cv2.line(image, left, right, GRID, 1)
        _text(image, f"{y:g}", (4, left[1] + 4), 0.4)
    step = max(1, math.ceil((axes.x1 - axes.x0) / MAX_X_TICKS))
    for x in range(math.ceil(axes.x0), math.floor(axes.x1) + 1, step):
        bottom = axes.to_pixel(x, axes.y0)
        cv2.line(image, bottom, axes.to_pixel(x, axes.y1), GRID, 1)
        _text(image, str(x), (bottom[0] - 4, bottom[1] + 16), 0.4)
    cv2.rectangle(image, axes.to_pixel(axes.x0, axes.y1), axes.to_pixel(axes.x1, axes.y0), INK, 1)


def _draw_series(image: np.ndarray, axes: _Axes, series: Series, colour: tuple[int, ...]) -> None:
    points = [axes.to_pixel(x, y) for x, y in series.points if math.isfinite(y)]
    for a, b in itertools.pairwise(points):
        cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
    for p in points:
        cv2.circle(image, p, 4, colour, -1, cv2.LINE_AA)


def _dashed(image: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> None:
    for x in range(start[0], end[0], 12):
        cv2.line(image, (x, start[1]), (min(x + 6, end[0]), start[1]), (90, 90, 90), 1)


def _legend(image: np.ndarray, series: Sequence[Series], goal: bool = True) -> None:
    x = PANEL[0] - MARGIN[2] - 130
    for i, (colour, line) in enumerate(zip(COLOURS, series, strict=False)):
        y = MARGIN[1] + _legend_baseline(i)
        cv2.line(image, (x, y - 4), (x + 20, y - 4), colour, 2)
        _text(image, line.label, (x + 26, y), 0.45)
    if not goal:
        return
    y = MARGIN[1] + _legend_baseline(min(len(series), len(COLOURS)))  # below the last line's row
    _dashed(image, (x, y - 4), (x + 20, y - 4))
    _text(image, "goal", (x + 26, y), 0.45)


def _text(image: np.ndarray, text: str, at: tuple[int, int], scale: float) -> None:
    cv2.putText(image, text, at, FONT, scale, INK, 1, cv2.LINE_AA)
