"""The synthetic driver and avatars: held-out people the real face detector finds."""

import numpy as np
import pytest

from stages.face.detector import create_detector
from stages.reenact.person import (
    PersonConfig,
    PersonSource,
    held_out_identity,
    person_loader,
    ping_pong,
)
from training.worldset import WorldSplits


def test_ping_pong_plays_forward_then_backward():
    assert [ping_pong(i, 4) for i in range(9)] == [0, 1, 2, 3, 2, 1, 0, 1, 2]


def test_driver_and_avatar_identities_are_held_out_and_distinct():
    test, train = WorldSplits().seeds("test"), WorldSplits().seeds("train")
    assert held_out_identity(0) in test and held_out_identity(0) not in train
    assert held_out_identity(0) != held_out_identity(1)


@pytest.fixture(scope="module")
def driver_frames():
    source = PersonSource(PersonConfig(clip_frames=6, frames=8,
                                                         render_size=96))
    info = source.open()
    frames = []
    while (got := source.read()) is not None:
        frames.append(got)
    source.close()
    return info, frames


def test_the_driver_is_a_640x480_stream_at_30_fps(driver_frames):
    info, frames = driver_frames
    assert (info.width, info.height, info.frame_rate) == (640, 480, 30)
    assert not info.self_paced
    assert len(frames) == 8
    assert all(f.image.shape == (480, 640, 3) for f in frames)
    assert [f.pts for f in frames] == list(range(8))
    assert not np.array_equal(frames[0].image, frames[3].image)  # it moves
    assert np.array_equal(frames[4].image, frames[6].image)  # ping-pong around frame 5


def test_the_real_face_detector_finds_the_synthetic_driver(driver_frames):
    detector = create_detector()
    _, frames = driver_frames
    found = [bool(detector.detect(f.image)) for f in frames[:4]]
    assert all(found)


def test_the_synthetic_avatar_loader():
    portrait = person_loader("2")
    assert portrait.image.shape == (512, 512, 3) and portrait.crop is None
    assert create_detector().detect(portrait.image)
    with pytest.raises(ValueError, match="person:N"):
        person_loader("two")
