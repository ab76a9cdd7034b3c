"""One-Euro filter: still stays still, steps are followed, time is injected."""

from __future__ import annotations

import numpy as np
import pytest

from stages.face.smoothing import OneEuroConfig, OneEuroFilter, smoothing_factor

DT = 1 / 25


def test_still_signal_stays_exactly_still():
    f = OneEuroFilter(OneEuroConfig(min_cutoff=0.5, beta=10.0))
    outputs = [f((120.25, 80.5), i * DT, scale=100.0) for i in range(200)]
    assert all(np.array_equal(o, [120.25, 80.5]) for o in outputs)


def test_noisy_still_signal_is_steadier_than_its_input():
    # Detector noise of 0.5 % of the face size on a still face (100 px).
    rng = np.random.default_rng(0)
    noisy = 50.0 + rng.normal(0, 0.5, size=500)
    f = OneEuroFilter(OneEuroConfig(min_cutoff=0.4, beta=10.0, d_cutoff=0.5))
    out = np.array([f(x, i * DT, scale=100.0)[0] for i, x in enumerate(noisy)])
    assert out[100:].std() < 0.4 * noisy[100:].std()


def test_step_is_followed_within_a_bounded_number_of_samples():
    f = OneEuroFilter(OneEuroConfig(min_cutoff=0.4, beta=10.0, d_cutoff=0.5))
    for i in range(25):
        f(0.0, i * DT, scale=100.0)
    # A jump of one face size (100 px): within 10 px after 5 samples, 1 px after 25.
    out = [f(100.0, (25 + i) * DT, scale=100.0)[0] for i in range(25)]
    assert out[0] > 0
    assert out[4] > 90
    assert out[24] > 99


def test_without_beta_a_step_lags_like_a_plain_low_pass():
    slow = OneEuroFilter(OneEuroConfig(min_cutoff=0.4, beta=0.0))
    fast = OneEuroFilter(OneEuroConfig(min_cutoff=0.4, beta=20.0))
    for f in (slow, fast):
        f(0.0, 0.0, scale=100.0)
    s = [slow(100.0, (i + 1) * DT, scale=100.0)[0] for i in range(5)]
    q = [fast(100.0, (i + 1) * DT, scale=100.0)[0] for i in range(5)]
    alpha = smoothing_factor(0.4, DT)
    assert s[0] == pytest.approx(100 * alpha)
    assert q[-1] > s[-1] + 30


def test_repeated_or_older_timestamps_are_ignored():
    f = OneEuroFilter()
    f(1.0, 1.0)
    first = f(2.0, 1.04)
    assert np.array_equal(f(50.0, 1.04), first)
    assert np.array_equal(f(50.0, 0.5), first)


def test_reset_passes_the_next_sample_through():
    f = OneEuroFilter()
    f(0.0, 0.0)
    f(10.0, 0.04)
    f.reset()
    assert f.value is None
    assert f(42.0, 0.08)[0] == 42.0


def test_shape_change_and_bad_config_are_rejected():
    f = OneEuroFilter()
    f((1.0, 2.0), 0.0)
    with pytest.raises(ValueError, match="shape"):
        f(1.0, 0.04)
    with pytest.raises(ValueError, match="cutoff"):
        OneEuroConfig(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroConfig(beta=-1.0)
