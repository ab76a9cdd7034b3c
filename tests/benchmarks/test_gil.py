"""The GIL's switch interval for a block (`benchmarks.gil`)."""

from __future__ import annotations

import sys

import pytest

from benchmarks.gil import gil_switch_interval


def test_the_interval_holds_inside_the_block_and_comes_back_after():
    before = sys.getswitchinterval()
    with gil_switch_interval(0.0005) as interval:
        assert interval == pytest.approx(0.0005, rel=0.01)
        assert sys.getswitchinterval() == interval
        with gil_switch_interval(0.002):
            assert sys.getswitchinterval() == pytest.approx(0.002, rel=0.01)
        assert sys.getswitchinterval() == interval
    assert sys.getswitchinterval() == before


def test_it_comes_back_when_the_block_fails():
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), gil_switch_interval(0.001):
        raise RuntimeError("a run that failed")
    assert sys.getswitchinterval() == before


def test_none_leaves_the_interval_as_it_is():
    before = sys.getswitchinterval()
    with gil_switch_interval(None) as interval:
        assert interval == before
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("seconds", [0.0, -0.001])
def test_a_bad_interval_is_refused_before_anything_changes(seconds):
    before = sys.getswitchinterval()
    with pytest.raises(ValueError, match="switch interval"), gil_switch_interval(seconds):
        pass
    assert sys.getswitchinterval() == before
