"""RgbConverter: the pixels of PyAV's own conversion, without its per-frame threads."""

from __future__ import annotations

import numpy as np
import pytest
from av.video.frame import VideoFrame

from stages.io.av_convert import RgbConverter


def yuv_frame(width: int = 64, height: int = 48, seed: int = 0) -> VideoFrame:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_same_pixels_as_pyav_for_frame_after_frame(seed):
    convert = RgbConverter()
    for offset in range(3):  # the kept context serves every frame of a stream
        frame = yuv_frame(seed=seed + offset)
        image = convert(frame)
        assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
        assert np.array_equal(image, frame.to_ndarray(format="rgb24"))


def test_resizing_matches_pyav_and_a_size_change_midstream_is_fine():
    convert = RgbConverter()
    frame = yuv_frame()
    expected = frame.to_ndarray(format="rgb24", width=32, height=24, interpolation="AREA")
    assert np.array_equal(convert(frame, 32, 24, "AREA"), expected)
    bigger = yuv_frame(128, 96)
    assert np.array_equal(convert(bigger), bigger.to_ndarray(format="rgb24"))
