"""The tracking benchmark: its known canvas path, its reference mapping, and a short run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.track import CanvasPath, run_track_bench, still_jitter, true_crop
from stages.face.types import CropBox, Detection


def test_canvas_path_is_continuous_and_frozen_in_the_still_stretch():
    path = CanvasPath()
    a = path.transform(path.still_start, 256)
    b = path.transform(path.still_end - 0.01, 256)
    np.testing.assert_array_equal(a, b)
    just_after = path.transform(path.still_end + 0.001, 256)
    np.testing.assert_allclose(just_after, a, atol=0.5)  # 1 ms of motion: under 1 px
    assert path.is_still(path.still_start + path.settle)
    assert not path.is_still(path.still_start)  # settling time is excluded


def test_canvas_path_puts_the_clip_centre_where_it_says():
    path = CanvasPath(pan=(0.0, 0.0), zoom=0.0, base_scale=0.5)
    affine = path.transform(1.0, 256)
    centre = affine @ np.array([127.5, 127.5, 1.0])
    np.testing.assert_allclose(centre, [320.0, 240.0])
    assert affine[0, 0] == affine[1, 1] == 0.5


def test_true_crop_maps_the_reference_crop_through_the_similarity():
    ref = Detection(box=(100.0, 100.0, 150.0, 160.0), score=1.0)  # centre (125, 130), size 55
    affine = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -4.0]])
    crop = true_crop(ref, affine, 1.6)
    assert (crop.cx, crop.cy) == pytest.approx((260.0, 256.0))
    assert crop.side == pytest.approx(2 * 1.6 * 55)


def test_still_jitter_is_in_output_pixels():
    crops = [CropBox(100.0 + dx, 50.0, 128.0) for dx in (-1.0, 1.0, -1.0, 1.0)]
    centre, side = still_jitter(crops, 256)
    assert centre == pytest.approx(2.0)  # 1 frame pixel = 2 output pixels at 128 -> 256
    assert side == 0.0
    assert math.isnan(still_jitter(crops[:1], 256)[0])


def test_short_run_on_a_real_clip_meets_the_targets(shared_media):
    figures = run_track_bench(
        shared_media, seconds=8.0, clips=("driving2.mp4",), max_clip_frames=110
    )
    for key in ("detection_rate", "center_error_rel", "still_jitter_px", "track_ms_p50"):
        assert key in figures
    assert figures["frames"] == 200
    assert figures["detection_rate"] >= 0.99
    assert figures["center_error_rel"] <= 0.05
    assert figures["still_jitter_px"] <= 1.0
