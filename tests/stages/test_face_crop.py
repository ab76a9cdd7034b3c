"""ViCoFace crop geometry: the crop window, its affine, the inverse and the warp."""

from __future__ import annotations

import numpy as np
import pytest

from stages.face.crop import (
    CropConfig,
    crop_affine,
    crop_box_for,
    paste_back_affine,
    supersample_factor,
    warp_crop,
)
from stages.face.types import CropBox, Detection, invert_affine


def _apply(affine: np.ndarray, x: float, y: float) -> tuple[float, float]:
    out = affine @ np.array([x, y, 1.0])
    return float(out[0]), float(out[1])


def test_crop_box_is_square_centred_with_side_1_6_mean_size():
    # Box 100 wide, 140 high centred at (150, 170): mean size 120, side 192.
    det = Detection(box=(100.0, 100.0, 200.0, 240.0), score=0.99)
    crop = crop_box_for(det)
    assert (crop.cx, crop.cy) == (150.0, 170.0)
    assert crop.side == pytest.approx(192.0)
    assert crop.box == pytest.approx((54.0, 74.0, 246.0, 266.0))


def test_crop_box_scale_is_a_parameter():
    det = Detection(box=(0.0, 0.0, 50.0, 50.0), score=1.0)
    assert crop_box_for(det, scale=2.0).side == pytest.approx(100.0)


def test_affine_maps_window_edges_to_output_pixel_edges():
    crop = CropBox(cx=150.0, cy=170.0, side=192.0)
    affine = crop_affine(crop, 256)
    # Left/top edge of the window -> outer edge of pixel 0; right/bottom -> size - 0.5.
    assert _apply(affine, 54.0, 74.0) == pytest.approx((-0.5, -0.5))
    assert _apply(affine, 246.0, 266.0) == pytest.approx((255.5, 255.5))
    # The box centre lands on the centre of the output grid.
    assert _apply(affine, 150.0, 170.0) == pytest.approx((127.5, 127.5))


def test_inverse_affine_maps_crop_corners_back_to_the_window():
    crop = CropBox(cx=321.7, cy=88.2, side=143.0)
    back = paste_back_affine(crop, 256)
    x0, y0, x1, y1 = crop.box
    assert _apply(back, -0.5, -0.5) == pytest.approx((x0, y0))
    assert _apply(back, 255.5, -0.5) == pytest.approx((x1, y0))
    assert _apply(back, -0.5, 255.5) == pytest.approx((x0, y1))
    assert _apply(back, 255.5, 255.5) == pytest.approx((x1, y1))
    np.testing.assert_allclose(invert_affine(back), crop_affine(crop, 256), atol=1e-9)


def test_warp_cuts_the_window_out_of_the_frame():
    # A frame whose pixel values encode their own coordinates: the crop of an
    # integer-aligned window at scale 1 must reproduce that region exactly.
    ys, xs = np.mgrid[0:120, 0:160]
    frame = np.stack([xs, ys, (xs + ys) % 256], axis=-1).astype(np.uint8)
    crop = CropBox(cx=80.0 - 0.5, cy=60.0 - 0.5, side=32.0)  # pixels 64..95 x 44..75
    out = warp_crop(frame, crop, CropConfig(size=32, interpolation="linear"))
    np.testing.assert_array_equal(out, frame[44:76, 64:96])


def test_crop_outside_the_frame_is_padded_by_the_chosen_border():
    frame = np.full((50, 50, 3), 200, dtype=np.uint8)
    crop = CropBox(cx=0.0, cy=0.0, side=50.0)  # three quarters outside
    replicated = warp_crop(frame, crop, CropConfig(size=16, border="replicate"))
    constant = warp_crop(frame, crop, CropConfig(size=16, border="constant"))
    assert replicated.shape == (16, 16, 3)
    assert (replicated == 200).all()
    assert (constant[:4, :4] == 0).all()
    assert (constant[-4:, -4:] == 200).all()


def test_large_downscale_is_supersampled_and_keeps_the_mean():
    assert supersample_factor(200.0, 256) == 1
    assert supersample_factor(600.0, 256) == 2
    assert supersample_factor(5000.0, 256) == 4
    # A one-pixel checkerboard shrunk 4x must average to grey, not alias.
    checker = (np.indices((512, 512)).sum(0) % 2 * 255).astype(np.uint8)
    frame = np.repeat(checker[:, :, None], 3, axis=2)
    out = warp_crop(frame, CropBox(cx=255.5, cy=255.5, side=512.0), CropConfig(size=128))
    assert abs(float(out.mean()) - 127.5) < 3
    assert float(out.std()) < 20


def test_crop_config_rejects_bad_values():
    with pytest.raises(ValueError, match="interpolation"):
        CropConfig(interpolation="area")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        CropConfig(size=2)
    with pytest.raises(ValueError, match="side"):
        crop_affine(CropBox(0.0, 0.0, 0.0), 256)
