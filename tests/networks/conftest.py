"""Fixtures for the network tests: tiny configurations and the reference manifests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from networks.config import ModelConfig, custom_config

MANIFESTS = {
    "lia-256": "lia_vox_256_state_dict_shapes.json",
    "vicoface-256": "vicoface_256_state_dict_shapes.json",
    "discriminator-256": "lia_discriminator_256_state_dict_shapes.json",
}


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """Run these tests on one intra-op thread, restoring the setting afterwards.

    The tensors here are tiny; on a shared, oversubscribed 2-core machine the
    OpenMP barriers of a 2-thread pool made the same tests 10x slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny(family: str) -> ModelConfig:
    """A 32 px model of the given family: same architecture, milliseconds per call."""
    base = "vicoface-64s" if family == "vicoface" else "lia-64s"
    return custom_config(
        base, name=f"tiny-{family}", size=32, channels=(32, 32, 16, 8), style_dim=64
    )


@pytest.fixture(params=["lia", "vicoface"])
def tiny_config(request: pytest.FixtureRequest) -> ModelConfig:
    return tiny(request.param)


@pytest.fixture(scope="session")
def manifests(shared_method: Path) -> dict[str, dict[str, Any]]:
    """The three state-dict manifests of the method notes, by model name."""
    return {k: json.loads((shared_method / v).read_text()) for k, v in MANIFESTS.items()}


def random_images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """``[batch, 3, size, size]`` uniform in [-1, 1]."""
    rng = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=rng) * 2 - 1
