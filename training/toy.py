"""A tiny procedural reenactment dataset for fast tests and benchmarks of the trainer.

An identity is a background colour, a blob colour and a blob radius; a
motion is the blob's offset and its aspect. Every (identity, motion) pair
renders exactly, so the cross ground truth exists. It is deliberately
simple (a few ms per sample at 32 px): the synthetic talking-head world in
``training.world`` is the real training data.

Samples are dicts of ``[3, S, S]`` float tensors in [-1, 1] with the keys
``source``, ``target`` (same identity), ``other`` (another identity) and
``cross_truth`` (source identity with the motion of ``other``), plus
``identity`` (int label of the source).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from training.paths import TrainBatch


class ToyReenactmentDataset(Dataset[dict[str, Tensor]]):
    """``length`` samples over ``identities`` identities at ``size`` px, fixed by ``seed``."""

    def __init__(
        self, size: int = 32, identities: int = 8, length: int = 64, seed: int = 0
    ) -> None:
        self.size, self.length, self.seed = size, length, seed
        gen = torch.Generator().manual_seed(seed)
        self.background = torch.rand(identities, 3, generator=gen) * 2 - 1
        self.colour = torch.rand(identities, 3, generator=gen) * 2 - 1
        self.radius = 0.25 + 0.2 * torch.rand(identities, generator=gen)
        self.identities = identities

    def __len__(self) -> int:
        return self.length

    def _motion(self, index: int, which: int) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed * 7919 + index * 31 + which)
        return torch.rand(3, generator=gen) * torch.tensor([0.8, 0.8, 0.6]) - torch.tensor(
            [0.4, 0.4, 0.3]
        )

    def render(self, identity: int, motion: Tensor) -> Tensor:
        """``[3, S, S]`` image of ``identity`` with ``motion`` (dx, dy, aspect)."""
        axis = torch.linspace(-1, 1, self.size)
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        dx, dy, aspect = motion.tolist()
        r = self.radius[identity]
        inside = ((x - dx) / (r * (1 + aspect))) ** 2 + ((y - dy) / (r * (1 - aspect))) ** 2
        mask = torch.sigmoid((1 - inside) * 8)
        bg = self.background[identity].view(3, 1, 1)
        fg = self.colour[identity].view(3, 1, 1)
        return bg * (1 - mask) + fg * mask

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        ident = index % self.identities
        other = (ident + 1 + index // self.identities) % self.identities
        if other == ident:
            other = (ident + 1) % self.identities
        m_s, m_t, m_o = (self._motion(index, k) for k in range(3))
        return {
            "source": self.render(ident, m_s),
            "target": self.render(ident, m_t),
            "other": self.render(other, m_o),
            "cross_truth": self.render(ident, m_o),
            "identity": torch.tensor(ident),
        }


def toy_batch(raw: Mapping[str, Any]) -> TrainBatch:
    """Adapter from a collated toy batch to a TrainBatch."""
    return TrainBatch(raw["source"], raw["target"], raw["other"], raw["cross_truth"])


__all__ = ["ToyReenactmentDataset", "toy_batch"]
