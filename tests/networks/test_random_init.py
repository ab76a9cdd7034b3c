"""Random weights in a trained generator's flow regime (`networks.random_init`)."""

from __future__ import annotations

import pytest
import torch

from networks.avatar import Reenactor
from networks.config import get_config
from networks.generator import Generator
from networks.random_init import FLOW_GAIN, random_generator, scale_flow_heads
from trt_engines.model_graphs import model_cases
from trt_engines.parity import rounding_floor
from trt_engines.torch_engine import TorchEngine


def mean_flow_offsets(generator: Generator) -> list[float]:
    """Mean |flow offset| (grid units) per scale on the parity case's picture-like inputs."""
    reenactor = Reenactor(generator)
    _, case = model_cases(reenactor)
    feeds = case.feeds(case.inputs, 1, 0)
    offsets: list[float] = []
    hooks = [
        head.register_forward_hook(
            lambda _m, _i, out: offsets.append(float(torch.tanh(out[2][:, :2]).abs().mean()))
        )
        for head in generator.dec.to_flows
    ]
    with torch.no_grad():
        case.module(*(feeds[s.name] for s in case.inputs))
    for hook in hooks:
        hook.remove()
    return offsets


def test_default_gain_brings_flows_from_scrambling_to_a_trained_models_size():
    config = get_config("lia-64s")
    default = mean_flow_offsets(random_generator(config, seed=0, flow_gain=1.0))
    scaled = mean_flow_offsets(random_generator(config, seed=0))
    # LIA's own initialisation moves pixels by a sixth to a third of the picture;
    # the bundled trained model by ~0.08 grid units.
    assert min(default) > 0.25, default
    assert max(scaled) < 0.15, scaled
    assert min(scaled) > 0.02, scaled


def test_only_the_flow_heads_change_and_the_layout_is_the_generators():
    config = get_config("vicoface-64s")
    plain = random_generator(config, seed=3, flow_gain=1.0).state_dict()
    scaled = random_generator(config, seed=3).state_dict()
    assert plain.keys() == scaled.keys()
    flow_weights = {f"dec.to_flows.{i}.conv.weight" for i in range(config.num_scales)}
    for key, value in plain.items():
        expected = value * FLOW_GAIN if key in flow_weights else value
        torch.testing.assert_close(scaled[key], expected, rtol=0, atol=0, msg=key)


def test_seeded_and_leaves_the_global_generator_alone():
    config = get_config("lia-64s")
    torch.manual_seed(123)
    before = torch.rand(4)
    torch.manual_seed(123)
    first = random_generator(config, seed=5).state_dict()
    after = torch.rand(4)
    second = random_generator(config, seed=5).state_dict()
    torch.testing.assert_close(before, after)
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)


def test_scaled_flows_make_rounding_small_enough_for_a_1e4_parity_check():
    config = get_config("lia-64s")
    floors = []
    for gain in (1.0, FLOW_GAIN):
        reenactor = Reenactor(random_generator(config, seed=0, flow_gain=gain))
        _, case = model_cases(reenactor)
        engine = TorchEngine(case.module, case.inputs, case.outputs, device="cpu")
        floors.append(rounding_floor(engine, case.feeds(case.inputs, 1, 0))["image"])
    default_floor, scaled_floor = floors
    assert scaled_floor < 1e-5 < default_floor, floors


def test_a_gain_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        scale_flow_heads(Generator(get_config("lia-64s")), 0.0)
