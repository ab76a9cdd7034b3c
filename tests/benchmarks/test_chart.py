"""The benchmark charts: the legend never covers a point."""

from __future__ import annotations

import pytest

from benchmarks.chart import MARGIN, Series, _axes_for, _legend_bottom, _legend_rows


@pytest.mark.parametrize("lines", [1, 2, 4])
@pytest.mark.parametrize("goal", [None, 50.0])
def test_the_highest_point_lies_below_the_legend(lines: int, goal: float | None):
    series = [Series(f"s{i}", [(0.0, 10.0), (5.0, 159.0 + i), (9.0, 161.0)]) for i in range(lines)]
    rows = _legend_rows(series, goal)
    axes = _axes_for(series, goal, rows)
    top = min(axes.to_pixel(x, y)[1] for s in series for x, y in s.points)
    assert top > MARGIN[1] + _legend_bottom(rows)


def test_without_a_legend_the_axis_keeps_its_usual_headroom():
    series = [Series("s", [(0.0, 10.0), (1.0, 100.0)])]
    assert _axes_for(series, None, 0).y1 == 200  # 110 rounded up to one significant digit
    assert _legend_rows([], None) == 0
