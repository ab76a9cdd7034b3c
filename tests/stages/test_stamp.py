from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.stream import VideoStream

from pipeline.frame import Image
from stages.stamp import (
    CELLS,
    INDEX_MODULUS,
    StampRegion,
    crc8,
    encode_cells,
    read_stamp,
    stamp,
)


def _textured(rng: np.random.Generator, h: int = 480, w: int = 640) -> Image:
    """Smooth random colour picture: realistic work for a codec, no stamp."""
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return _u8(np.ascontiguousarray(cv2.GaussianBlur(noise, (0, 0), 3)))


def _stamped(indices: list[int], seed: int = 0) -> list[Image]:
    rng = np.random.default_rng(seed)
    pictures = []
    for index in indices:
        picture = _textured(rng)
        stamp(picture, index)
        pictures.append(picture)
    return pictures


def _u8(array: object) -> Image:
    """An OpenCV or NumPy result typed as the uint8 picture it is."""
    return np.asarray(array, dtype=np.uint8)


def _codec_round_trip(pictures: list[Image], path: Path, codec: str,
                      options: dict[str, object]) -> list[Image]:
    h, w = pictures[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = options
        for picture in pictures:
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(path)) as container:
        return [_u8(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


INDICES = [0, 1, 2, 1000, 65_535, 123_457, INDEX_MODULUS - 1]


@pytest.mark.parametrize("index", INDICES)
def test_round_trip_on_a_textured_picture(index):
    (picture,) = _stamped([index])
    assert read_stamp(picture) == index


def test_index_is_taken_modulo_2_pow_24():
    (picture,) = _stamped([INDEX_MODULUS + 5])
    assert read_stamp(picture) == 5


def test_negative_index_is_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        stamp(np.zeros((480, 640, 3), np.uint8), -1)


def test_cells_have_markers_and_crc():
    cells = encode_cells(0b1010)
    assert len(cells) == CELLS == 36
    assert cells[:2].tolist() == [True, False] and cells[-2:].tolist() == [False, True]
    payload = int("".join("1" if c else "0" for c in cells[2:26]), 2)
    check = int("".join("1" if c else "0" for c in cells[26:34]), 2)
    assert payload == 0b1010 and check == crc8(0b1010)


def test_crc_differs_for_single_bit_changes():
    value = 0x5A5A5A
    assert all(crc8(value) != crc8(value ^ (1 << bit)) for bit in range(24))


def test_a_flipped_cell_reads_as_none_not_a_wrong_number():
    (picture,) = _stamped([4242])
    # Paint one payload cell (cell 10) the opposite colour: a clean misread.
    x0, x1 = round(10 * 640 / CELLS), round(11 * 640 / CELLS)
    band = picture[0:24, x0:x1]
    band[...] = 255 - band[0, 0]
    assert read_stamp(picture) is None


def test_survives_h264_at_crf_28(tmp_path):
    indices = [i * 7919 + 3 for i in range(60)]
    decoded = _codec_round_trip(_stamped(indices), tmp_path / "s.mp4", "libx264",
                                {"crf": "28", "preset": "ultrafast"})
    assert [read_stamp(p) for p in decoded] == indices


def test_survives_vp8(tmp_path):
    indices = list(range(100, 120))
    decoded = _codec_round_trip(_stamped(indices), tmp_path / "s.webm", "libvpx",
                                {"crf": "30", "b": "300k", "deadline": "realtime"})
    assert [read_stamp(p) for p in decoded] == indices


@pytest.mark.parametrize("small", [(256, 256), (213, 160), (320, 240)])
def test_survives_resizing_down_and_back(small):
    indices = [7, 8_000_001, 31_337]
    for index, picture in zip(indices, _stamped(indices), strict=True):
        down = _u8(cv2.resize(picture, small, interpolation=cv2.INTER_AREA))
        up = _u8(cv2.resize(down, (640, 480), interpolation=cv2.INTER_LINEAR))
        assert (read_stamp(down), read_stamp(up)) == (index, index)


def test_survives_colour_and_level_shifts():
    (picture,) = _stamped([99_999])
    shifted = np.clip(picture.astype(np.float32) * 0.75 + [24, -12, 8], 0, 255)
    assert read_stamp(_u8(shifted)) == 99_999


def test_survives_limited_range_yuv420_conversion():
    (picture,) = _stamped([777])
    yuv = cv2.cvtColor(picture, cv2.COLOR_RGB2YUV_I420)
    assert read_stamp(_u8(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420))) == 777


def test_custom_region_round_trips_and_default_region_does_not_see_it():
    bottom = StampRegion(top=0.9, height=0.08, left=0.25, width=0.5)
    picture = _textured(np.random.default_rng(3))
    stamp(picture, 5150, bottom)
    assert read_stamp(picture, bottom) == 5150
    assert read_stamp(picture) is None


def test_region_outside_the_picture_is_rejected():
    with pytest.raises(ValueError, match="within"):
        StampRegion(top=0.98, height=0.05)


def test_too_small_picture_cannot_be_stamped_and_reads_none():
    tiny = np.zeros((30, 60, 3), np.uint8)
    with pytest.raises(ValueError, match="too small"):
        stamp(tiny, 1)
    assert read_stamp(tiny) is None


def test_unstamped_pictures_read_none():
    rng = np.random.default_rng(11)
    pictures = [_u8(rng.integers(0, 256, (480, 640, 3))) for _ in range(50)]
    pictures += [_textured(rng) for _ in range(20)]
    pictures += [np.full((480, 640, 3), v, np.uint8) for v in (0, 128, 255)]
    assert all(read_stamp(p) is None for p in pictures)


@pytest.mark.parametrize("clip", ["driving1.mp4", "driving2.mp4"])
def test_real_clips_read_none(shared_media, clip):
    with av.open(str(shared_media / clip)) as container:
        results = [read_stamp(_u8(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)]
    assert len(results) > 100
    assert all(r is None for r in results)


@pytest.mark.parametrize("portrait", ["mona_lisa.png", "monroe.png", "neutral1.jpg"])
def test_portraits_read_none(shared_media, portrait):
    bgr = cv2.imread(str(shared_media / portrait))
    assert bgr is not None
    assert read_stamp(_u8(bgr[..., ::-1])) is None


def test_stamp_writes_only_the_band():
    picture = _textured(np.random.default_rng(5))
    before = picture.copy()
    stamp(picture, 1234)
    assert np.array_equal(picture[24:], before[24:])
    assert not np.array_equal(picture[:24], before[:24])
    assert set(np.unique(picture[:24])) <= {0, 255}

