from fractions import Fraction

import cv2
import numpy as np
import pytest

from pipeline.stage import SourceFrame
from stages.io import ImageSource, ImageSourceConfig, SourceError


def _read(source: ImageSource) -> SourceFrame:
    frame = source.read()
    assert frame is not None
    return frame


@pytest.mark.parametrize("name", ["mona_lisa.png", "monroe.png", "neutral1.jpg"])
def test_repeats_a_shared_portrait_in_rgb(shared_media, name):
    path = shared_media / name
    source = ImageSource(ImageSourceConfig(path, fps=10, frames=3))
    info = source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    bgr = cv2.imread(str(path))
    assert bgr is not None
    expected = bgr[..., ::-1]  # OpenCV's BGR -> RGB
    assert (info.height, info.width) == expected.shape[:2]
    assert (info.frame_rate, info.frame_count, info.self_paced) == (Fraction(10), 3, False)
    assert len(frames) == 3
    assert all(np.array_equal(f.image, expected) for f in frames)
    assert [f.pts for f in frames] == [0, 1, 2]
    assert frames[0].time_base == Fraction(1, 10)


def test_rgb_order_of_a_known_picture(tmp_path):
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    source = ImageSource(ImageSourceConfig(tmp_path / "red.png", frames=1))
    source.open()
    assert _read(source).image[0, 0].tolist() == [200, 0, 0]


def test_each_frame_is_a_fresh_copy(shared_media):
    source = ImageSource(ImageSourceConfig(shared_media / "monroe.png", frames=2))
    source.open()
    first, second = _read(source), _read(source)
    first.image[...] = 0
    assert second.image.any()


def test_endless_when_frames_is_none(shared_media):
    source = ImageSource(ImageSourceConfig(shared_media / "monroe.png"))
    assert source.open().frame_count is None
    assert all(source.read() is not None for _ in range(50))


def test_resizes_to_the_configured_size(shared_media):
    source = ImageSource(ImageSourceConfig(shared_media / "neutral1.jpg", size=(320, 240),
                                           frames=1))
    info = source.open()
    assert (info.width, info.height) == (320, 240)
    assert _read(source).image.shape == (240, 320, 3)


def test_grey_and_alpha_pictures_become_rgb(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((6, 5), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), np.full((6, 5, 4), 90, np.uint8))
    for name in ("grey.png", "alpha.png"):
        source = ImageSource(ImageSourceConfig(tmp_path / name, frames=1))
        source.open()
        assert _read(source).image.shape == (6, 5, 3)


def test_read_after_close_ends_the_stream(shared_media):
    source = ImageSource(ImageSourceConfig(shared_media / "monroe.png"))
    source.open()
    assert source.read() is not None
    source.close()
    assert source.read() is None


def test_read_before_open_is_an_error(shared_media):
    with pytest.raises(RuntimeError, match="before open"):
        ImageSource(ImageSourceConfig(shared_media / "monroe.png")).read()


def test_missing_file_says_so(tmp_path):
    source = ImageSource(ImageSourceConfig(tmp_path / "absent.png"))
    with pytest.raises(SourceError, match=r"image file not found: .*absent\.png"):
        source.open()


def test_unreadable_file_says_so(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(SourceError, match=r"cannot decode .*fake\.jpg as an image"):
        ImageSource(ImageSourceConfig(path)).open()


@pytest.mark.parametrize(("config", "message"), [
    ({"fps": 0}, "fps"), ({"frames": -2}, "frames"), ({"size": (0, 10)}, "size"),
])
def test_config_is_validated(tmp_path, config, message):
    with pytest.raises(ValueError, match=message):
        ImageSourceConfig(tmp_path / "x.png", **config)
