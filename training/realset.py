"""Real clips (FOMM / LIA layout) as training data for `Trainer`.

The synthetic world's adapters live in `training.worldset`; these are their
real-data twins. Real data has no cross-subject ground truth: the ViCoFace
recipe's cross path is supervised by a frozen stage-1 model's pseudo targets
(``--cross-target pseudo --teacher FILE``) and by the identity / landmark
networks the user supplies.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from training.data.dataset import RealDataConfig, RealPairDataset, RealTripletDataset
from training.paths import TrainBatch


def real_training_dataset(root: Path, stage: str, size: int, seed: int = 0) -> Dataset[Any]:
    """The ``train/`` split of ``root``: triplets for ``"mixture"``, pairs for ``"self"``."""
    config = RealDataConfig(root=Path(root), split="train", size=size, seed=seed)
    if stage == "mixture":
        return RealTripletDataset(config)
    return RealPairDataset(config)


def real_batch(raw: Mapping[str, Any]) -> TrainBatch:
    """Adapter from a collated real triplet or pair batch to a TrainBatch."""
    if "other" in raw:
        return TrainBatch(raw["source"], raw["target"], raw["other"])
    return TrainBatch(raw["source"], raw["driving"])
