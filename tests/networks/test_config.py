"""Configurations: the registry, validation, JSON round trip, the discriminator's size."""

from __future__ import annotations

import pytest
import torch

from networks.config import (
    DiscriminatorConfig,
    ModelConfig,
    custom_config,
    get_config,
    list_configs,
)
from networks.discriminator import Discriminator
from networks.generator import Generator
from tests.networks.conftest import random_images, tiny


def test_registry_has_the_release_sizes_and_small_twins():
    names = set(list_configs())
    assert {
        "lia-256",
        "vicoface-256",
        "lia-64s",
        "vicoface-64s",
        "lia-128s",
        "vicoface-128s",
    } <= names
    for name in names:
        config = get_config(name)
        assert config.name == name
        assert (config.id_dim > 0) == (config.family == "vicoface")


def test_small_twins_differ_only_in_family():
    for size in ("64s", "128s"):
        lia, vicoface = get_config(f"lia-{size}"), get_config(f"vicoface-{size}")
        assert lia.channels == vicoface.channels and lia.style_dim == vicoface.style_dim
        assert (lia.coeff_dim, vicoface.coeff_dim) == (20, 30)


def test_unknown_config_names_the_choices():
    with pytest.raises(KeyError, match="lia-256"):
        get_config("lia-512")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 48}, "power of two"),
        ({"channels": (32, 32)}, "channels needs 4 entries"),
        ({"id_dim": 0}, "ViCoFace needs id_dim > 0"),
        ({"family": "lia"}, "id_dim must be 0"),
        ({"style_dim": 16}, "must not exceed style_dim"),
    ],
)
def test_invalid_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        custom_config(tiny("vicoface"), **changes)


def test_json_round_trip():
    config = get_config("vicoface-128s")
    assert ModelConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({**config.__dict__, "depth": 3})


def test_feature_shapes_follow_the_size():
    config = get_config("lia-256")
    assert config.num_scales == 6
    assert config.feature_shapes[0] == (512, 8, 8)
    assert config.feature_shapes[-1] == (64, 256, 256)


def test_generator_size_follows_the_config(tiny_config):
    generator = Generator(tiny_config)
    # 1x1 from RGB, one ResBlock per scale, the 4x4 read-out
    assert len(generator.enc.net_app.convs) == tiny_config.num_scales + 2
    assert len(generator.dec.to_flows) == tiny_config.num_scales
    with torch.no_grad():
        out = generator(random_images(2, 32), random_images(2, 32, seed=1))
    assert out.shape == (2, 3, 32, 32)


def test_small_discriminator_from_the_generator_config():
    config = DiscriminatorConfig.for_model(tiny("lia"))
    dis = Discriminator(config)
    with torch.no_grad():
        assert dis(random_images(4, 32)).shape == (4, 1)
        assert dis(random_images(2, 32)).shape == (2, 1)  # group = min(batch, 4)
        with pytest.raises(ValueError, match="multiple of the stddev group"):
            dis(random_images(6, 32))
