"""Small, fast worlds shared by the training tests."""

from __future__ import annotations

import pytest

from training.world.identity import HairStyle, Identity
from training.world.splits import WorldSplits
from training.world.world import ClipConfig, World


def first_seed_with(style: HairStyle, start: int = 0) -> int:
    """The first identity seed at or after ``start`` with hair ``style``."""
    for seed in range(start, start + 500):
        if Identity.from_seed(seed).hair.style is style:
            return seed
    raise AssertionError(f"no identity with {style} among 500 seeds")


@pytest.fixture(scope="session")
def small_world() -> World:
    return World(WorldSplits(train=6, val=3, test=3), ClipConfig(clips_per_identity=2, frames=40))
