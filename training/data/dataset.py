"""Real talking-head datasets over the FOMM layout (`training.data.layout`).

- `RealPairDataset` (spec A.7, LIA's ``Vox256``): one item per clip per
  epoch, ``source`` and ``driving`` = two distinct random frames of the clip.
- `RealTripletDataset` (spec B.3, ViCoFace): ``source`` and ``target`` from
  one clip, more than ``min_gap`` frames apart when the clip is long enough,
  and ``other``, a random frame of a different clip.

Images are ``[3, S, S]`` float32 in [-1, 1], centre-cropped to a square and
resized to ``size``. Items are pure functions of the config and their position
(`training.data.sampling` explains exact resumption).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.clips import Clip, FrameLRU, open_clip
from training.data.layout import find_clips
from training.data.sampling import item_rng, sample_frame_pair
from training.data.tensors import image_to_tensor

Item = dict[str, torch.Tensor]

_PAIR_STREAM, _TRIPLET_STREAM = 11, 12


@dataclass(frozen=True)
class RealDataConfig:
    """Which real clips to serve, and how.

    Attributes:
        root: dataset root holding ``train/`` and ``test/``.
        split: the sub-folder to read.
        size: model input size in pixels.
        min_gap: for triplets, source and target are more than this many
            frames apart when the clip has more than ``min_gap + 1`` frames.
        seed: picks the frames of every position.
        cache_mb: bound of the decoded-frame LRU, per dataset copy (so per
            DataLoader worker).
    """

    root: Path
    split: str = "train"
    size: int = 256
    min_gap: int = 30
    seed: int = 0
    cache_mb: int = 512


class _ClipDataset(Dataset[Item]):
    _stream = 0

    def __init__(self, config: RealDataConfig) -> None:
        self.config = config
        self.sources = find_clips(Path(config.root), config.split)
        self.cache = FrameLRU(config.cache_mb * 2**20)
        self.clips: list[Clip] = [open_clip(s, config.size, self.cache) for s in self.sources]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``: item ``i`` becomes position ``epoch * len(self) + i``."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = epoch

    def _position(self, index: int) -> tuple[int, np.random.Generator]:
        """The clip of item ``index`` and the item's random generator."""
        if index < 0:
            raise IndexError(f"index must be non-negative, got {index}")
        position = self.epoch * len(self) + index
        return position % len(self), item_rng(self.config.seed, self._stream, position)

    def _pair(self, g: np.random.Generator, clip: Clip, min_gap: int) -> tuple[int, int]:
        if len(clip) < 2:
            raise ValueError(f"clip {clip.name} has {len(clip)} frame(s); a pair needs 2")
        return sample_frame_pair(g, len(clip), min_gap)

    def _tensor(self, clip: Clip, index: int) -> torch.Tensor:
        return image_to_tensor(clip.frame(index))


@dataclass(frozen=True)
class FramePlan:
    """Which frames an item uses: clip indices into ``dataset.clips``, frame indices.

    ``other_clip`` and ``other_frame`` are -1 for pair items.
    """

    clip: int
    source: int
    target: int
    other_clip: int = -1
    other_frame: int = -1


class RealPairDataset(_ClipDataset):
    """(source, driving): two distinct random frames of one clip (LIA training).

    Keys: ``source``, ``driving`` ``[3, S, S]``; ``clip`` (int64 index).
    """

    _stream = _PAIR_STREAM

    def plan(self, index: int) -> FramePlan:
        at, g = self._position(index)
        i, j = self._pair(g, self.clips[at], 0)
        return FramePlan(at, i, j)

    def __getitem__(self, index: int) -> Item:
        plan = self.plan(index)
        clip = self.clips[plan.clip]
        return {
            "source": self._tensor(clip, plan.source),
            "driving": self._tensor(clip, plan.target),
            "clip": torch.tensor(plan.clip, dtype=torch.int64),
        }


class RealTripletDataset(_ClipDataset):
    """ViCoFace's (x_s, x_t, x_o) triplet from real clips.

    Keys: ``source``, ``target`` (one clip, more than ``min_gap`` frames
    apart when it is long enough), ``other`` (a random frame of another clip),
    each ``[3, S, S]``; ``clip``, ``other_clip`` (int64 indices).
    """

    _stream = _TRIPLET_STREAM

    def __init__(self, config: RealDataConfig) -> None:
        super().__init__(config)
        if len(self.clips) < 2:
            raise ValueError(
                f"{Path(config.root) / config.split} has one clip; triplets need a second "
                "clip for the other identity"
            )

    def plan(self, index: int) -> FramePlan:
        at, g = self._position(index)
        i, j = self._pair(g, self.clips[at], self.config.min_gap)
        other_at = (at + 1 + int(g.integers(len(self.clips) - 1))) % len(self.clips)
        other = self.clips[other_at]
        if len(other) < 1:
            raise ValueError(f"clip {other.name} has no frames")
        return FramePlan(at, i, j, other_at, int(g.integers(len(other))))

    def __getitem__(self, index: int) -> Item:
        plan = self.plan(index)
        clip, other = self.clips[plan.clip], self.clips[plan.other_clip]
        return {
            "source": self._tensor(clip, plan.source),
            "target": self._tensor(clip, plan.target),
            "other": self._tensor(other, plan.other_frame),
            "clip": torch.tensor(plan.clip, dtype=torch.int64),
            "other_clip": torch.tensor(plan.other_clip, dtype=torch.int64),
        }
