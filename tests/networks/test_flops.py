"""Parameter and FLOP figures against the measurements in the method notes."""

from __future__ import annotations

import pytest

from networks.config import get_config, list_configs
from networks.flops import flops_breakdown, flops_per_frame, param_count

LIA_256_FLOPS_PER_FRAME = 61.33e9  # spec A.8: driver encode + fc + dec, source cached
LIA_256_ENCODE_FLOPS = 31.20e9


def test_lia_256_parameters():
    assert param_count("lia-256") == 45_116_317


def test_vicoface_256_parameters():
    assert param_count("vicoface-256") == 45_126_567


@pytest.mark.parametrize("name", ["lia-256", "vicoface-256"])
def test_256_per_frame_flops_match_the_measured_figure(name):
    assert flops_per_frame(name) == pytest.approx(LIA_256_FLOPS_PER_FRAME, rel=0.01)


def test_lia_256_breakdown():
    flops = flops_breakdown(get_config("lia-256"))
    assert flops["encode"] == pytest.approx(LIA_256_ENCODE_FLOPS, rel=0.01)
    assert flops["fc"] == 4 * 2 * 512 * 512 + 2 * 512 * 20  # five affine layers, batch 1


@pytest.mark.parametrize(("size", "low", "high"), [(64, 0.2e9, 0.5e9), (128, 1.0e9, 2.0e9)])
def test_small_configs_stay_in_their_real_time_budget(size, low, high):
    names = [n for n in list_configs() if get_config(n).size == size]
    assert len(names) == 2  # a LIA and a ViCoFace twin
    for name in names:
        assert low <= flops_per_frame(name) <= high
        assert param_count(name) < 10_000_000
