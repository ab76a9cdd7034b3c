"""Compositing geometry and paste-back (torch on the CPU, tiny pictures)."""

import numpy as np
import pytest
import torch

from stages.face.crop import CropConfig, crop_affine
from stages.face.crop import warp_crop as host_warp_crop
from stages.face.types import CropBox
from stages.reenact.composite import (
    Rect,
    feather_mask,
    fit_rect,
    paste,
    paste_layout,
    place_crop,
    place_frame,
    split_side_by_side,
)
from stages.reenact.tensors import (
    image_to_tensor,
    new_canvas,
    resize,
    tensor_to_image,
    to_uint8,
    to_unit,
    warp_crop,
)


def _portrait(h=120, w=100, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_fit_rect_contains_and_centres():
    assert fit_rect((64, 64), (640, 480)) == Rect(80, 0, 480, 480)
    assert fit_rect((640, 480), (320, 480)) == Rect(0, 120, 320, 240)
    assert fit_rect((100, 50), (100, 50)) == Rect(0, 0, 100, 50)
    with pytest.raises(ValueError, match="positive"):
        fit_rect((0, 5), (10, 10))


def test_side_by_side_halves_cover_the_canvas_without_overlap():
    left, right = split_side_by_side((1281, 480))
    assert left == Rect(0, 0, 640, 480)
    assert right == Rect(640, 0, 641, 480)


def test_feather_mask_is_zero_at_the_border_one_inside_and_monotone():
    mask = feather_mask(64, margin=0.05, feather=0.2)[0, 0]
    assert mask.shape == (64, 64)
    assert float(mask[0].max()) == 0.0 and float(mask[:, -1].max()) == 0.0
    assert float(mask[32, 32]) == 1.0
    row = mask[32, :32]
    assert torch.all(row[1:] >= row[:-1])
    with pytest.raises(ValueError, match=r"sum below 0\.5"):
        feather_mask(8, 0.3, 0.3)


def _layout(portrait, box, size=16, region=(100, 120)):
    affine = crop_affine(box, size)
    mask = feather_mask(size, 0.05, 0.2)
    return paste_layout(image_to_tensor(portrait), affine, size, region, mask)


def test_paste_leaves_pixels_outside_the_mask_untouched():
    portrait = _portrait()
    layout = _layout(portrait, CropBox(50, 60, 40))
    out = new_canvas((100, 120), torch.device("cpu"))
    face = torch.rand(1, 3, 16, 16) * 2 - 1
    paste(layout, face, out)
    result = tensor_to_image(out)
    weight = np.zeros((120, 100), np.float32)
    r = layout.roi
    weight[r.y : r.y + r.h, r.x : r.x + r.w] = layout.mask[0, 0].numpy()
    outside = weight == 0
    assert outside.sum() > 0.5 * outside.size  # the crop covers a small part
    assert np.array_equal(result[outside], portrait[outside])
    assert not np.array_equal(result[weight == 1], portrait[weight == 1])


def test_paste_puts_the_face_where_the_crop_was_cut():
    portrait = np.zeros((120, 100, 3), np.uint8)
    box = CropBox(40, 70, 30)
    layout = _layout(portrait, box)
    out = new_canvas((100, 120), torch.device("cpu"))
    paste(layout, torch.ones(1, 3, 16, 16), out)  # a white face
    result = tensor_to_image(out)
    assert result[70, 40].tolist() == [255, 255, 255]  # the crop centre
    assert result[70, 40 + 16].tolist() == [0, 0, 0]  # outside the crop (half side 15)
    assert result[70 - 16, 40].tolist() == [0, 0, 0]


def test_paste_of_the_portraits_own_crop_gives_the_portrait_back():
    # crop -> paste must be the identity inside the mask, or the affines disagree.
    yy, xx = np.mgrid[0:120, 0:100]
    smooth = np.stack([xx * 2, yy * 2, (xx + yy)], axis=-1).clip(0, 255).astype(np.uint8)
    box = CropBox(50, 60, 48)
    crop = host_warp_crop(smooth, box, CropConfig(size=48, interpolation="linear"))
    layout = _layout(smooth, box, size=48)
    out = new_canvas((100, 120), torch.device("cpu"))
    paste(layout, to_unit(image_to_tensor(crop)), out)
    diff = np.abs(tensor_to_image(out).astype(int) - smooth.astype(int))
    assert diff.max() <= 3


def test_paste_fits_the_portrait_into_a_region_of_another_aspect():
    portrait = _portrait(h=100, w=100)
    layout = _layout(portrait, CropBox(50, 50, 30), region=(200, 100))
    out = new_canvas((200, 100), torch.device("cpu"))
    paste(layout, torch.zeros(1, 3, 16, 16), out)
    result = tensor_to_image(out)
    assert np.array_equal(result[:, :50], np.zeros((100, 50, 3), np.uint8))  # letterbox
    assert np.array_equal(result[:10, 50:150], portrait[:10])  # untouched, unscaled rows
    assert result[50, 100].tolist() == [128, 128, 128]  # the crop centre, shifted by the bar
    assert np.array_equal(result[50, 130], portrait[50, 80])  # beyond the crop's half side


def test_paste_scales_the_crop_with_a_downscaled_portrait():
    portrait = np.zeros((200, 200, 3), np.uint8)
    layout = _layout(portrait, CropBox(60, 100, 40), region=(100, 100))
    out = new_canvas((100, 100), torch.device("cpu"))
    paste(layout, torch.ones(1, 3, 16, 16), out)
    result = tensor_to_image(out)
    assert result[50, 30].tolist() == [255, 255, 255]  # centre (60, 100) halved
    assert result[50, 42].max() == 0  # 12 px right: beyond the halved half side of 10


def test_place_crop_letterboxes_a_square():
    out = new_canvas((40, 20), torch.device("cpu"))
    place_crop(torch.ones(1, 3, 8, 8), out, (9, 9, 9))
    result = tensor_to_image(out)
    assert result[:, :10].tolist() == np.full((20, 10, 3), 9).tolist()
    assert result[:, 10:30].min() == 255 and result[:, 30:].max() == 9


def test_place_frame_copies_a_same_size_frame_exactly():
    frame = _portrait(h=20, w=30)
    out = new_canvas((30, 20), torch.device("cpu"))
    place_frame(image_to_tensor(frame), out, (0, 0, 0))
    assert np.array_equal(tensor_to_image(out), frame)


def test_device_crop_matches_the_face_packages_crop():
    yy, xx = np.mgrid[0:120, 0:160]
    frame = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.uint8)
    for box in (CropBox(80, 60, 40), CropBox(70, 50, 130), CropBox(10, 10, 50)):
        host = host_warp_crop(frame, box, CropConfig(size=32, interpolation="linear"))
        device = to_uint8(warp_crop(image_to_tensor(frame), crop_affine(box, 32), 32))
        diff = np.abs(tensor_to_image(device).astype(int) - host.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 4, box


def test_unit_range_round_trip_and_resize_keeps_dtype():
    image = torch.randint(0, 256, (1, 3, 5, 7), dtype=torch.uint8)
    assert torch.equal(to_uint8(to_unit(image)), image)
    assert resize(image, (14, 10)).dtype == torch.uint8
    assert resize(image, (7, 5)) is image


def test_canvas_download_is_a_contiguous_copy():
    canvas = new_canvas((6, 4), torch.device("cpu"))
    picture = tensor_to_image(canvas)
    assert picture.shape == (4, 6, 3) and picture.flags["C_CONTIGUOUS"]
    canvas.fill_(7)
    assert picture.max() == 0
