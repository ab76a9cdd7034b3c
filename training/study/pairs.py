"""The held-out cross pairs the study scores, and which of them are a shape mismatch.

A pair is the world's ``CrossEvalSet`` triple (avatar of identity A, driver
of identity B, ground truth = A with B's motion) plus what the study needs
beyond the evaluator's: one mask per preserved attribute (hair, torso, face
outline) and a **shape distance** between A and B computed from the world's
ground-truth parameters, never from model outputs.

Shape distance: each numeric parameter of head shape, hair and torso
(`SHAPE_PARAMETERS`) is standardised over the split's identities; the
distance is the root mean square of the standardised differences, plus
`STYLE_STEP` when the hair styles differ (a bun against an afro is a larger
change than any one number says). The shape-mismatch subset is the
``mismatch_share`` of pairs with the largest distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.world.dataset import CrossEvalSet
from training.world.identity import Identity
from training.world.render import MASK_NAMES
from training.world.world import World
from training.worldset import ATTRIBUTE_MASKS

SHAPE_PARAMETERS: tuple[str, ...] = (
    "face.half_width",
    "face.crown",
    "face.chin",
    "face.depth",
    "face.jaw_exponent",
    "face.chin_width",
    "face.ear_size",
    "hair.hairline",
    "hair.volume",
    "hair.length",
    "body.neck_width",
    "body.shoulder_y",
    "body.shoulder_span",
    "body.shoulder_drop",
)
"""Ground-truth parameters of what reenactment must preserve (head shape, hair, torso)."""

STYLE_STEP = 1.0
"""Added to the distance when the hair styles differ (in standard deviations)."""


def shape_vector(identity: Identity) -> np.ndarray:
    """The `SHAPE_PARAMETERS` of one identity, in order."""
    values = []
    for dotted in SHAPE_PARAMETERS:
        group, name = dotted.split(".")
        values.append(float(getattr(getattr(identity, group), name)))
    return np.asarray(values)


@dataclass(frozen=True)
class ShapeScale:
    """Mean and standard deviation of each shape parameter over a split."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of_split(cls, world: World, split: str) -> ShapeScale:
        rows = np.stack(
            [shape_vector(world.identity(split, i)) for i in range(world.splits.count(split))]
        )
        return cls(rows.mean(0), np.maximum(rows.std(0), 1e-12))

    def distance(self, a: Identity, b: Identity) -> float:
        """RMS standardised difference, plus `STYLE_STEP` for a different hair style."""
        diff = (shape_vector(a) - shape_vector(b)) / self.std
        step = STYLE_STEP if a.hair.style != b.hair.style else 0.0
        return float(math.sqrt(float(np.mean(diff**2)))) + step


@dataclass(frozen=True)
class CrossPairs:
    """``N`` held-out cross pairs, stacked.

    Attributes:
        avatar, driver, truth: ``[N, 3, S, S]`` in [-1, 1].
        masks: per attribute (`ATTRIBUTE_MASKS`) ``[N, 1, S, S]`` bool, of the truth.
        shape_distance: ``[N]`` ground-truth shape distance of avatar and driver identity.
        mismatch: ``[N]`` bool, the shape-mismatch subset.
        identities: ``[N, 2]`` (avatar, driver) identity indices in the split.
    """

    avatar: Tensor
    driver: Tensor
    truth: Tensor
    masks: dict[str, Tensor]
    shape_distance: Tensor
    mismatch: Tensor
    identities: Tensor

    def __len__(self) -> int:
        return int(self.avatar.shape[0])

    def chunks(self, size: int) -> list[slice]:
        return [slice(i, min(i + size, len(self))) for i in range(0, len(self), size)]


def build_cross_pairs(
    world: World, split: str, size: int, pairs: int, mismatch_share: float = 0.25, seed: int = 0
) -> CrossPairs:
    """Render ``pairs`` cross triples of ``split`` and mark the shape-mismatch subset."""
    if not 0.0 < mismatch_share <= 1.0:
        raise ValueError("mismatch_share must be in (0, 1]")
    data = CrossEvalSet(world, split, size, pairs, seed=seed)
    scale = ShapeScale.of_split(world, split)
    items = [data[i] for i in range(pairs)]
    plans = [data.plan(i) for i in range(pairs)]
    distance = torch.tensor(
        [
            scale.distance(
                world.identity(split, p.avatar.identity), world.identity(split, p.driver.identity)
            )
            for p in plans
        ]
    )
    count = max(1, round(mismatch_share * pairs))
    mismatch = torch.zeros(pairs, dtype=torch.bool)
    mismatch[torch.argsort(distance, descending=True)[:count]] = True
    region_masks = torch.stack([item["target_masks"] for item in items])
    masks = {
        name: region_masks[:, MASK_NAMES.index(name)].unsqueeze(1) > 0.5 for name in ATTRIBUTE_MASKS
    }
    return CrossPairs(
        avatar=torch.stack([item["avatar"] for item in items]),
        driver=torch.stack([item["driver"] for item in items]),
        truth=torch.stack([item["target"] for item in items]),
        masks=masks,
        shape_distance=distance,
        mismatch=mismatch,
        identities=torch.tensor([[p.avatar.identity, p.driver.identity] for p in plans]),
    )


__all__ = [
    "SHAPE_PARAMETERS",
    "STYLE_STEP",
    "CrossPairs",
    "ShapeScale",
    "build_cross_pairs",
    "shape_vector",
]
