"""The full-size networks match the release checkpoints' state dicts exactly.

The 256 px models are large: each is built once per module.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import nn

from networks.checkpoint import infer_config, load_checked
from networks.config import DiscriminatorConfig, get_config
from networks.discriminator import Discriminator
from networks.generator import Generator
from tests.networks.conftest import tiny


@pytest.fixture(scope="module")
def networks_256() -> dict[str, nn.Module]:
    lia = get_config("lia-256")
    return {
        "lia-256": Generator(lia),
        "vicoface-256": Generator(get_config("vicoface-256")),
        "discriminator-256": Discriminator(DiscriminatorConfig.for_model(lia)),
    }


def buffer_names(manifest: dict[str, Any]) -> set[str]:
    (key,) = [k for k in manifest if k.startswith("buffers")]
    return set(manifest[key])


def tensors_like(manifest: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=rng) for k, shape in manifest["state_dict"].items()}


NAMES = ["lia-256", "vicoface-256", "discriminator-256"]


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_match_the_manifest(name, networks_256, manifests):
    state = networks_256[name].state_dict()
    manifest = manifests[name]
    assert list(state) == list(manifest["state_dict"])  # same keys, same order
    assert {k: list(v.shape) for k, v in state.items()} == manifest["state_dict"]
    assert len(state) == manifest["num_state_dict_entries"]


@pytest.mark.parametrize("name", ["lia-256", "vicoface-256"])
def test_fir_kernels_are_the_persistent_buffers(name, networks_256, manifests):
    module = networks_256[name]
    persistent = {k for k, _ in module.named_buffers() if k in module.state_dict()}
    assert persistent == buffer_names(manifests[name])


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_the_manifest(name, networks_256, manifests):
    module = networks_256[name]
    assert sum(p.numel() for p in module.parameters()) == manifests[name]["total_params"]


@pytest.mark.parametrize("name", ["lia-256", "vicoface-256"])
def test_parameter_breakdown_matches_the_manifest(name, networks_256, manifests):
    generator = networks_256[name]
    breakdown = manifests[name]["params_breakdown"]

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(generator.enc) == breakdown["params_enc"]
    assert count(generator.enc.net_app) == breakdown["params_enc_net_app"]
    assert count(generator.dec) == breakdown["params_dec"]
    assert count(generator.dec.direction) == breakdown["params_dec_direction"]


@pytest.mark.parametrize("name", NAMES)
def test_tensors_laid_out_as_the_manifest_load_strictly(name, networks_256, manifests):
    module = networks_256[name]
    tensors = tensors_like(manifests[name])
    load_checked(module, tensors, name)  # raises on any missing/unexpected/shape mismatch
    result = module.load_state_dict(tensors, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    loaded = module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())


@pytest.mark.parametrize("name", ["lia-256", "vicoface-256"])
def test_family_and_size_are_detected_from_the_manifest_tensors(name, manifests):
    tensors = tensors_like(manifests[name])
    assert infer_config(tensors) == get_config(name)


@pytest.mark.parametrize("name", ["lia-64s", "vicoface-128s"])
def test_small_registered_configs_are_detected(name):
    state = Generator(get_config(name)).state_dict()
    assert infer_config(state) == get_config(name)


def test_unregistered_sizes_are_detected_as_custom():
    config = tiny("vicoface")
    found = infer_config(Generator(config).state_dict())
    assert found.name == "vicoface-32-custom"
    assert found == replace(config, name="vicoface-32-custom")
