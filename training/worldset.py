"""The trainer's and the evaluator's view of the synthetic world (``training.world``).

* Training: ``training.world.dataset.MixtureDataset`` (ViCoFace triplets with
  the exact cross ground truth) or ``SelfReenactmentDataset``; `world_batch`
  turns their collated items into a `TrainBatch`. Their items are a pure
  function of the position, so the trainer feeds positions as a stream
  (``StepBatchSampler(stream=True)``): position = global sample number.
* Evaluation: `world_eval_batches` builds fixed self and cross `EvalBatch`
  lists on held-out identities (``CrossEvalSet`` for cross; self pairs from
  ``SelfReenactmentDataset`` on the same split), with the attribute mask =
  hair | torso | face outline of each ground truth.

Identity splits (``training.world.splits``) are disjoint seed blocks, so
evaluation identities never appear in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from training.evaluate import EvalBatch
from training.paths import TrainBatch
from training.world.dataset import (
    CrossEvalSet,
    MixtureDataset,
    SelfReenactmentDataset,
    WorldDataConfig,
)
from training.world.render import MASK_NAMES
from training.world.splits import WorldSplits
from training.world.world import ClipConfig, World

ATTRIBUTE_MASKS = ("hair", "torso", "face_outline")
"""Regions whose appearance reenactment must keep: the attribute-error mask."""
_ATTR_INDEX = [MASK_NAMES.index(name) for name in ATTRIBUTE_MASKS]


def default_world() -> World:
    """The world vicocam trains and evaluates on (2000 / 100 / 100 identities)."""
    return World(WorldSplits(), ClipConfig())


def pixels_to_unit(landmarks: Tensor, size: int) -> Tensor:
    """Pixel landmarks ``[..., K, 2]`` (picture spans [-0.5, S - 0.5]) -> [-1, 1]."""
    return (landmarks + 0.5) / size * 2.0 - 1.0


def attribute_mask(masks: Tensor) -> Tensor:
    """``[B, M, S, S]`` region masks (MASK_NAMES order) -> ``[B, 1, S, S]`` bool."""
    return masks[:, _ATTR_INDEX].amax(1, keepdim=True) > 0.5


def training_dataset(
    world: World, stage: str, size: int, seed: int = 0
) -> MixtureDataset | SelfReenactmentDataset:
    """The train-split dataset of a stage (``"mixture"`` or ``"self"``)."""
    config = WorldDataConfig(split="train", size=size, seed=seed)
    if stage == "mixture":
        return MixtureDataset(world, config)
    return SelfReenactmentDataset(world, config)


def world_batch(raw: Mapping[str, Any]) -> TrainBatch:
    """Adapter from a collated world item batch (mixture or self) to a TrainBatch."""
    if "other" not in raw:
        return TrainBatch(raw["source"], raw["target"])
    size = int(raw["source"].shape[-1])
    return TrainBatch(
        raw["source"],
        raw["target"],
        raw["other"],
        raw["cross_target"],
        pixels_to_unit(raw["cross_landmarks"], size),
    )


def _stack(items: Sequence[Mapping[str, Tensor]], key: str) -> Tensor:
    return torch.stack([item[key] for item in items])


def cross_eval_batches(
    world: World, split: str, size: int, pairs: int, batch: int = 16
) -> list[EvalBatch]:
    """``CrossEvalSet`` triples as EvalBatches (avatar, driver, truth, attribute mask)."""
    data = CrossEvalSet(world, split, size, pairs)
    out = []
    for start in range(0, pairs, batch):
        items = [data[i] for i in range(start, min(start + batch, pairs))]
        mask = attribute_mask(_stack(items, "target_masks"))
        out.append(
            EvalBatch(
                _stack(items, "avatar"), _stack(items, "driver"), _stack(items, "target"), mask
            )
        )
    return out


def self_eval_batches(
    world: World, split: str, size: int, pairs: int, batch: int = 16, seed: int = 0
) -> list[EvalBatch]:
    """Self pairs of ``split``: avatar x_s, driver = truth = x_t (same clip, > 30 frames apart)."""
    data = SelfReenactmentDataset(world, WorldDataConfig(split=split, size=size, seed=seed))
    out = []
    for start in range(0, pairs, batch):
        indices = range(start, min(start + batch, pairs))
        items = [data[i] for i in indices]
        masks = torch.stack(
            [torch.from_numpy(data.frame(data.plan(i).target).mask_stack()) for i in indices]
        )
        target = _stack(items, "target")
        out.append(EvalBatch(_stack(items, "source"), target, target, attribute_mask(masks)))
    return out


def world_eval_batches(
    world: World, split: str, size: int, pairs: int, batch: int = 16
) -> tuple[list[EvalBatch], list[EvalBatch]]:
    """Fixed (self, cross) evaluation batches on ``split`` (``"val"`` or ``"test"``)."""
    if split == "train":
        raise ValueError("evaluate on held-out identities: split 'val' or 'test'")
    return (
        self_eval_batches(world, split, size, pairs, batch),
        cross_eval_batches(world, split, size, pairs, batch),
    )


__all__ = [
    "ATTRIBUTE_MASKS",
    "attribute_mask",
    "cross_eval_batches",
    "default_world",
    "pixels_to_unit",
    "self_eval_batches",
    "training_dataset",
    "world_batch",
    "world_eval_batches",
]
