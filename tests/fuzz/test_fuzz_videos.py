"""Fuzzing video files through the file source: frames of RGB or a `SourceError`, in bounded
time and memory.

Seeds: tiny H.264, VP8, VP9, raw, MJPEG and MPEG-2 files in six containers, a
file with a video stream and no frame, an audio-only file and a picture named
``.mp4`` (`tests.fuzz.corpus`). Cases: byte edits of them (truncations, corrupt
bytes), saved under any ending (a wrong extension), read once or looped.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stages.io import SourceError, SourceOptions, open_source
from tests.fuzz import tally
from tests.fuzz.corpus import seeds
from tests.fuzz.mutations import mutated
from tests.fuzz.profiles import budget

SEEDS = seeds("videos")
ENDINGS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".ts", ".y4m", ".m4v", ".png", ".bin", "")
MAX_FRAMES = 24


@pytest.fixture(autouse=True)
def quiet_damage_warnings(caplog):
    # Every damaged packet is logged; thousands of them would only slow the run.
    caplog.set_level(logging.ERROR, logger="stages.io.video")


def read_all(data: bytes, folder, ending: str, loop: bool) -> str:
    """Open and read ``data`` saved as ``clip<ending>``; how it ended."""
    path = folder / f"clip{ending}"
    path.write_bytes(data)
    source = open_source(str(path), SourceOptions(frames=MAX_FRAMES, loop=loop))
    try:
        info = source.open()
        count = sum(1 for _ in iter(lambda: _checked(source.read()), None))
    except SourceError as exc:
        assert str(exc)
        return "SourceError"
    finally:
        source.close()
    assert count <= MAX_FRAMES and info.width >= 0
    return "frames" if count else "no frames"


def _checked(got):
    if got is not None:
        image = got.image
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    return got


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_file_reads_or_is_refused(name, tmp_path):
    tally.count("videos.seeds", read_all(SEEDS[name], tmp_path, "." + name.split(".")[-1],
                                         loop=True))


def test_the_seeds_cover_zero_frames_and_wrong_contents(tmp_path):
    assert read_all(SEEDS["zero-frames.avi"], tmp_path, ".avi", loop=True) == "no frames"
    assert read_all(SEEDS["zero-frames.y4m"], tmp_path, ".y4m", loop=True) == "no frames"
    assert read_all(SEEDS["audio-only.mkv"], tmp_path, ".mkv", loop=False) == "SourceError"
    assert read_all(SEEDS["h264.mp4"], tmp_path, ".mp4", loop=False) == "frames"


@budget(ci=80, fuzz=1500)
@given(case=mutated(SEEDS), ending=st.sampled_from(ENDINGS), loop=st.booleans())
def test_damaged_files_under_any_name_read_or_are_refused(tmp_path_factory, case, ending, loop):
    folder = tmp_path_factory.mktemp("video", numbered=True)
    tally.count("videos.bytes", read_all(case[1], folder, ending, loop))
