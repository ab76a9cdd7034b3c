from fractions import Fraction

import numpy as np
import pytest

from pipeline.stage import Source, SourceFrame, SourceInfo
from stages.io import PatternConfig, PatternSource
from stages.stamp import StampRegion, read_stamp


def _open(**config) -> tuple[PatternSource, SourceInfo]:
    source = PatternSource(PatternConfig(**config))
    return source, source.open()


def test_is_a_source_with_the_configured_stream_info():
    source, info = _open(width=320, height=180, fps=Fraction(30000, 1001), frames=5)
    assert isinstance(source, Source)
    assert (info.width, info.height, info.frame_rate) == (320, 180, Fraction(30000, 1001))
    assert (info.self_paced, info.frame_count) == (False, 5)


def test_produces_the_configured_number_of_stamped_frames():
    source, _ = _open(width=320, height=240, fps=25, frames=7)
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert source.read() is None  # stays ended
    assert [read_stamp(f.image) for f in frames] == list(range(7))
    assert [f.pts for f in frames] == list(range(7))
    assert all(f.time_base == Fraction(1, 25) for f in frames)
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)


def _read(source: PatternSource) -> SourceFrame:
    frame = source.read()
    assert frame is not None
    return frame


def test_endless_when_frames_is_none():
    source, info = _open(width=96, height=64, frames=None)
    assert info.frame_count is None
    frames = [_read(source) for _ in range(200)]
    assert read_stamp(frames[-1].image) == 199


def test_picture_is_animated_below_the_stamp():
    source, _ = _open()
    first, second, later = source.render(0), source.render(1), source.render(30)
    band = 24  # default stamp band at 480 high
    moved = np.abs(second[band:].astype(int) - first[band:]).max(axis=2) > 8
    assert moved.mean() > 0.05
    assert not np.array_equal(first[band:], later[band:])


def test_picture_is_textured_not_flat():
    source, _ = _open()
    image = source.render(0)
    assert image.std() > 30
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000


def test_same_seed_same_pictures_other_seed_other_pictures():
    a, _ = _open(seed=1)
    b, _ = _open(seed=1)
    c, _ = _open(seed=2)
    assert np.array_equal(a.render(12), b.render(12))
    assert not np.array_equal(a.render(12), c.render(12))


def test_frames_are_independent_arrays():
    source, _ = _open(width=96, height=64)
    first = _read(source)
    second = _read(source)
    first.image[...] = 0
    assert read_stamp(second.image) == 1


def test_custom_stamp_region():
    region = StampRegion(top=0.9, height=0.1)
    source, _ = _open(stamp_region=region)
    image = source.render(77)
    assert read_stamp(image, region) == 77
    assert read_stamp(image) is None


@pytest.mark.parametrize(("config", "message"), [
    ({"width": 40}, "too small"),
    ({"height": 10}, "too small"),
    ({"fps": 0}, "fps"),
    ({"frames": -1}, "frames"),
])
def test_config_is_validated(config, message):
    with pytest.raises(ValueError, match=message):
        PatternConfig(**config)


def test_read_after_close_ends_the_stream():
    source, _ = _open(width=96, height=64)
    assert source.read() is not None
    source.close()
    assert source.read() is None


def test_read_before_open_is_an_error():
    with pytest.raises(RuntimeError, match="before open"):
        PatternSource().read()
