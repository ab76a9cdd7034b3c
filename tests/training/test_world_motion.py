"""Motion clips: deterministic, smooth, in range, with blinks and speech."""

from __future__ import annotations

import numpy as np
import pytest

from training.world.motion import (
    MOTION_FIELDS,
    MOTION_RANGES,
    Motion,
    MotionClip,
    MotionConfig,
    sample_clip,
)

FPS = 25.0


@pytest.fixture(scope="module")
def long_clip() -> MotionClip:
    return sample_clip(11, 750, FPS)  # 30 s


def test_clip_is_deterministic_per_seed():
    assert np.array_equal(sample_clip(5, 120).values, sample_clip(5, 120).values)
    assert not np.array_equal(sample_clip(5, 120).values, sample_clip(6, 120).values)


def test_clip_shape_and_ranges(long_clip):
    assert long_clip.values.shape == (750, len(MOTION_FIELDS))
    assert long_clip.values.dtype == np.float32 and long_clip.fps == FPS
    for name in MOTION_FIELDS:
        lo, hi = MOTION_RANGES[name]
        channel = long_clip.channel(name)
        assert lo <= channel.min() and channel.max() <= hi, name


def test_head_pose_is_smooth(long_clip):
    cfg = MotionConfig()
    for name, amplitude in cfg.pose_amplitude:
        # The fastest sinusoid bounds the per-frame change of a pose channel.
        bound = amplitude * 2 * np.pi * cfg.pose_hz[1] / FPS
        step = np.abs(np.diff(long_clip.channel(name))).max()
        assert 0 < step <= bound * 1.01, name
    assert np.ptp(long_clip.channel("yaw")) > 5.0  # it does move


def test_blinks_are_short_full_closures(long_clip):
    both = np.minimum(long_clip.channel("blink_left"), long_clip.channel("blink_right"))
    closed = both > 0.95
    starts = np.flatnonzero(closed[1:] & ~closed[:-1])
    assert 3 <= len(starts) <= 25  # about 0.35 Hz over 30 s
    # Each closure is brief: no run of closed frames longer than ~0.3 s.
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], closed, [0]]).astype(int))))[::2]
    assert runs.max() <= 0.3 * FPS
    assert np.median(both) < 0.2  # eyes are mostly open


def test_mouth_moves_like_speech(long_clip):
    mouth = long_clip.channel("mouth_open")
    opening = (mouth[1:] > 0.25) & (mouth[:-1] <= 0.25)
    rate = opening.sum() / (len(mouth) / FPS)
    assert 0.8 <= rate <= 6.0  # syllables, grouped into phrases with pauses
    assert (mouth < 0.05).mean() > 0.1  # pauses and closures


def test_motion_array_round_trip():
    motion = Motion(yaw=3.0, pitch=-2.0, mouth_open=0.5, blink_right=1.0)
    assert Motion.from_array(motion.to_array()) == motion
    clip = sample_clip(1, 10)
    assert clip[4] == Motion.from_array(clip.values[4])
    with pytest.raises(ValueError, match="a motion has"):
        Motion.from_array([1.0, 2.0])


def test_invalid_clip_arguments_are_rejected():
    with pytest.raises(ValueError):
        sample_clip(0, 0)
    with pytest.raises(ValueError):
        sample_clip(0, 10, fps=0)
    with pytest.raises(ValueError):
        MotionClip(values=np.zeros((4, 3), np.float32), fps=25.0)
