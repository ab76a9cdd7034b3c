"""Torch datasets over the synthetic world.

- `SelfReenactmentDataset`: source and target are two frames of one
  identity's clip (LIA's (source, driving) pair).
- `MixtureDataset`: ViCoFace's training triplet (spec B.3) plus what the
  real data can never give: the exact ground truth of the cross path,
  ``cross_target = render(identity of source, motion of other)``.
- `CrossEvalSet`: fixed (driver, avatar, ground truth) triples on held-out
  identities.

Images are ``[3, S, S]`` float32 in [-1, 1]; landmarks ``[K, 2]`` float32
pixels (`training.world.landmarks`); masks ``[M, S, S]`` float32 0/1 in
`MASK_NAMES` order; labels int64 scalars (the identity index in its split).

Every item is a pure function of the dataset config and its position (see
`training.data.sampling` for how a trainer resumes at an exact position);
`plan(index)` tells which frames an item uses without rendering them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.sampling import item_rng, sample_frame_pair
from training.data.tensors import image_to_tensor
from training.world.cache import FrameCache
from training.world.render import MASK_NAMES, Render
from training.world.splits import check_split
from training.world.world import FrameRef, World

Item = dict[str, torch.Tensor]

_SELF_STREAM, _MIXTURE_STREAM, _CROSS_EVAL_STREAM = 1, 2, 3


@dataclass(frozen=True)
class WorldDataConfig:
    """What a world dataset serves.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        size: output size in pixels.
        min_gap: source and target frames are more than this many frames
            apart (spec B.3 uses 30); clips must be longer than ``min_gap + 1``.
        epoch_length: items per epoch (``len(dataset)``); positions past it
            continue into later epochs.
        seed: picks which frames every position uses.
    """

    split: str = "train"
    size: int = 128
    min_gap: int = 30
    epoch_length: int = 10_000
    seed: int = 0


@dataclass(frozen=True)
class PairPlan:
    """Frames of a self-reenactment item."""

    source: FrameRef
    target: FrameRef


@dataclass(frozen=True)
class MixturePlan:
    """Frames of a mixture item.

    The cross target has ``source``'s identity and ``other``'s motion.
    """

    source: FrameRef
    target: FrameRef
    other: FrameRef


def _landmarks(frame: Render) -> torch.Tensor:
    return torch.from_numpy(frame.landmarks.copy())


def _masks(frame: Render) -> torch.Tensor:
    return torch.from_numpy(frame.mask_stack(MASK_NAMES).astype(np.float32))


def _label(index: int) -> torch.Tensor:
    return torch.tensor(index, dtype=torch.int64)


class _WorldDataset(Dataset[Item]):
    """Shared plumbing: config checks, epochs, positions, cached or live frames."""

    _stream = 0

    def __init__(
        self, world: World, config: WorldDataConfig, cache: FrameCache | None = None
    ) -> None:
        check_split(config.split)
        if world.splits.count(config.split) < 2:
            raise ValueError(f"split {config.split!r} needs at least 2 identities")
        if world.clips.frames <= config.min_gap + 1:
            raise ValueError(
                f"clips of {world.clips.frames} frames cannot hold frames more than "
                f"{config.min_gap} apart; lengthen ClipConfig.frames or lower min_gap"
            )
        if config.epoch_length < 1:
            raise ValueError("epoch_length must be positive")
        if cache is not None and (cache.split != config.split or cache.size != config.size):
            held, wanted = f"{cache.split}-{cache.size}", f"{config.split}-{config.size}"
            raise ValueError(f"the cache holds {held} frames, the dataset wants {wanted}")
        self.world, self.config, self.cache = world, config, cache
        self.epoch = 0

    def __len__(self) -> int:
        return self.config.epoch_length

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``: item ``i`` becomes position ``epoch * len(self) + i``."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        if index < 0:
            raise IndexError(f"index must be non-negative, got {index}")
        position = self.epoch * len(self) + index
        return item_rng(self.config.seed, self._stream, position)

    def _identity(self, g: np.random.Generator, avoid: int | None = None) -> int:
        count = self.world.splits.count(self.config.split)
        if avoid is None:
            return int(g.integers(count))
        # Uniform over the other identities.
        pick = int(g.integers(count - 1))
        return pick + 1 if pick >= avoid else pick

    def _clip_pair(self, g: np.random.Generator, identity: int) -> tuple[FrameRef, FrameRef]:
        clip = int(g.integers(self.world.clips.clips_per_identity))
        i, j = sample_frame_pair(g, self.world.clips.frames, self.config.min_gap)
        split = self.config.split
        return FrameRef(split, identity, clip, i), FrameRef(split, identity, clip, j)

    def _random_frame(self, g: np.random.Generator, identity: int) -> FrameRef:
        clip = int(g.integers(self.world.clips.clips_per_identity))
        frame = int(g.integers(self.world.clips.frames))
        return FrameRef(self.config.split, identity, clip, frame)

    def frame(self, ref: FrameRef) -> Render:
        """One frame of the world, from the cache when it has it."""
        if self.cache is not None and self.cache.covers(ref, self.config.size):
            return self.cache.render(ref)
        return self.world.render(ref, self.config.size)


class SelfReenactmentDataset(_WorldDataset):
    """(source, target): two frames of one identity's clip, more than ``min_gap`` apart.

    Item keys: ``source``, ``target`` ``[3, S, S]``; ``label``;
    ``source_landmarks``, ``target_landmarks`` ``[K, 2]``.
    """

    _stream = _SELF_STREAM

    def plan(self, index: int) -> PairPlan:
        g = self._rng(index)
        source, target = self._clip_pair(g, self._identity(g))
        return PairPlan(source, target)

    def __getitem__(self, index: int) -> Item:
        plan = self.plan(index)
        source, target = self.frame(plan.source), self.frame(plan.target)
        return {
            "source": image_to_tensor(source.image),
            "target": image_to_tensor(target.image),
            "label": _label(plan.source.identity),
            "source_landmarks": _landmarks(source),
            "target_landmarks": _landmarks(target),
        }


class MixtureDataset(_WorldDataset):
    """ViCoFace's triplet with the cross path's exact ground truth.

    Item keys (x_s, x_t, x_o, x_{s->o} in the spec's notation):
        ``source``, ``target``: two frames of one identity's clip, more than
            ``min_gap`` frames apart; ``other``: a random frame of another
            identity; ``cross_target``: the source identity rendered with the
            other frame's motion. Each ``[3, S, S]``.
        ``label``, ``other_label``: identity indices.
        ``{source,target,other,cross}_landmarks``: ``[K, 2]``.
        ``source_masks``, ``cross_masks``: ``[M, S, S]`` attribute masks of
            the source and of the cross target.
    """

    _stream = _MIXTURE_STREAM

    def plan(self, index: int) -> MixturePlan:
        g = self._rng(index)
        identity = self._identity(g)
        source, target = self._clip_pair(g, identity)
        other = self._random_frame(g, self._identity(g, avoid=identity))
        return MixturePlan(source, target, other)

    def __getitem__(self, index: int) -> Item:
        plan = self.plan(index)
        frames = {
            "source": self.frame(plan.source),
            "target": self.frame(plan.target),
            "other": self.frame(plan.other),
            "cross": self.world.render_cross(plan.source, plan.other, self.config.size),
        }
        item = {
            "source": image_to_tensor(frames["source"].image),
            "target": image_to_tensor(frames["target"].image),
            "other": image_to_tensor(frames["other"].image),
            "cross_target": image_to_tensor(frames["cross"].image),
            "label": _label(plan.source.identity),
            "other_label": _label(plan.other.identity),
            "source_masks": _masks(frames["source"]),
            "cross_masks": _masks(frames["cross"]),
        }
        for name, frame in frames.items():
            item[f"{name}_landmarks"] = _landmarks(frame)
        return item


@dataclass(frozen=True)
class CrossPlan:
    """An evaluation triple: ``avatar`` is identity A, ``driver`` identity B."""

    avatar: FrameRef
    driver: FrameRef


class CrossEvalSet(Dataset[Item]):
    """Fixed cross-reenactment triples on held-out identities.

    Item ``k`` pairs an avatar frame of identity A (frame 0 of one of its
    clips, as in LIA's protocol) with a driver frame of a different identity
    B; the ground truth is A with B's motion. Keys: ``driver``, ``avatar``,
    ``target`` ``[3, S, S]``; ``target_masks`` ``[M, S, S]``;
    ``driver_landmarks``, ``target_landmarks`` ``[K, 2]``; ``avatar_label``,
    ``driver_label``.
    """

    def __init__(
        self,
        world: World,
        split: str = "test",
        size: int = 128,
        pairs: int = 256,
        seed: int = 0,
    ) -> None:
        check_split(split)
        if world.splits.count(split) < 2:
            raise ValueError(f"split {split!r} needs at least 2 identities for cross pairs")
        if pairs < 1:
            raise ValueError("pairs must be positive")
        self.world, self.split, self.size, self.pairs, self.seed = world, split, size, pairs, seed

    def __len__(self) -> int:
        return self.pairs

    def plan(self, index: int) -> CrossPlan:
        if not 0 <= index < self.pairs:
            raise IndexError(f"the set has {self.pairs} triples, asked for {index}")
        g = item_rng(self.seed, _CROSS_EVAL_STREAM, index)
        count = self.world.splits.count(self.split)
        clips, frames = self.world.clips.clips_per_identity, self.world.clips.frames
        avatar = int(g.integers(count))
        driver = (avatar + 1 + int(g.integers(count - 1))) % count
        return CrossPlan(
            avatar=FrameRef(self.split, avatar, int(g.integers(clips)), 0),
            driver=FrameRef(self.split, driver, int(g.integers(clips)), int(g.integers(frames))),
        )

    def __getitem__(self, index: int) -> Item:
        plan = self.plan(index)
        driver = self.world.render(plan.driver, self.size)
        avatar = self.world.render(plan.avatar, self.size)
        target = self.world.render_cross(plan.avatar, plan.driver, self.size)
        return {
            "driver": image_to_tensor(driver.image),
            "avatar": image_to_tensor(avatar.image),
            "target": image_to_tensor(target.image),
            "target_masks": _masks(target),
            "driver_landmarks": _landmarks(driver),
            "target_landmarks": _landmarks(target),
            "avatar_label": _label(plan.avatar.identity),
            "driver_label": _label(plan.driver.identity),
        }
