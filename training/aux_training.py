"""Fit the tiny auxiliary networks on the synthetic world's labels.

The identity embedder learns to tell ``identities`` training identities
apart across motions; the landmark regressor learns the renderer's
landmarks. Batches are rendered on the fly (deterministic from the seed).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from training.aux_nets import (
    AuxTrainConfig,
    TinyIdentityEmbedder,
    TinyLandmarkRegressor,
    train_identity_embedder,
    train_landmark_regressor,
)
from training.data.tensors import image_to_tensor
from training.world.world import FrameRef
from training.worldset import default_world, pixels_to_unit


def world_label_batches(
    size: int, batch: int, identities: int, seed: int
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Endless ``(images [B,3,S,S], identity labels [B], landmarks [B,K,2] in [-1,1])``.

    Identities are the first ``identities`` of the train split; frames are
    random frames of their clips.
    """
    world = default_world()
    if not 2 <= identities <= world.splits.count("train"):
        raise ValueError(f"identities must be in 2..{world.splits.count('train')}")
    clips, frames = world.clips.clips_per_identity, world.clips.frames
    g = np.random.default_rng(seed)
    while True:
        labels = g.integers(identities, size=batch)
        images, points = [], []
        for label in labels:
            ref = FrameRef("train", int(label), int(g.integers(clips)), int(g.integers(frames)))
            frame = world.render(ref, size)
            images.append(image_to_tensor(frame.image))
            points.append(pixels_to_unit(torch.from_numpy(frame.landmarks), size))
        yield torch.stack(images), torch.from_numpy(labels), torch.stack(points).float()


def train_world_aux(
    kind: str, size: int, batch: int, identities: int, config: AuxTrainConfig
) -> tuple[TinyIdentityEmbedder | TinyLandmarkRegressor, float]:
    """Train the ``kind`` network (``"identity"`` / ``"landmarks"``); returns it and a held-out
    batch loss (cross-entropy, or mean |landmark error| in [-1, 1] units)."""
    source = world_label_batches(size, batch, identities, config.seed)
    if kind == "identity":
        embedder = train_identity_embedder(((x, y) for x, y, _ in source), identities, config)
        x, y, _ = next(source)
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(embedder.classify(x), y)
        return embedder, float(loss)
    if kind == "landmarks":
        count = next(source)[2].shape[1]
        regressor = train_landmark_regressor(((x, p) for x, _, p in source), count, config)
        x, _, p = next(source)
        with torch.no_grad():
            loss = (regressor(x) - p).abs().mean()
        return regressor, float(loss)
    raise ValueError(f"kind must be 'identity' or 'landmarks', got {kind!r}")


__all__ = ["train_world_aux", "world_label_batches"]
