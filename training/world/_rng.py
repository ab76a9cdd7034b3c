"""Seeded random streams for the synthetic world.

Every random draw in the world comes from a generator keyed by a tuple of
non-negative integers (a stream tag plus seeds). Keys never share a prefix
across purposes, so the identity, motion and dataset streams are independent
and a change in one never shifts the draws of another.
"""

from __future__ import annotations

import numpy as np

IDENTITY_STREAM = 0x1D
MOTION_STREAM = 0x30
DATASET_STREAM = 0xDA
CLIP_STREAM = 0xC1


def rng(*keys: int) -> np.random.Generator:
    """A generator fully determined by ``keys`` (each a non-negative int)."""
    for key in keys:
        if key < 0:
            raise ValueError(f"random stream keys must be non-negative, got {keys}")
    return np.random.default_rng(list(keys))
