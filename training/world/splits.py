"""Train / val / test identities, disjoint by construction.

Each split owns its own block of identity seeds: split ``k`` (train 0, val 1,
test 2) uses seeds ``k * SPLIT_SPAN + index``. No seed can belong to two
splits as long as ``index < SPLIT_SPAN``, which the constructor enforces.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.world.identity import Identity

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SPAN = 1_000_000
"""Seeds reserved per split; a split can hold at most this many identities."""


def check_split(split: str) -> int:
    """The position of ``split`` in `SPLITS`; raises a clear error otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return SPLITS.index(split)


@dataclass(frozen=True)
class WorldSplits:
    """How many identities each split has.

    An identity is addressed by ``(split, index)`` with ``0 <= index <
    count(split)``; its label is ``index`` (contiguous per split, ready for a
    classifier over the train identities) and its seed is unique across all
    splits.
    """

    train: int = 2000
    val: int = 100
    test: int = 100

    def __post_init__(self) -> None:
        for split in SPLITS:
            count = getattr(self, split)
            if not 0 <= count <= SPLIT_SPAN:
                raise ValueError(f"{split} must hold 0..{SPLIT_SPAN} identities, got {count}")

    def count(self, split: str) -> int:
        check_split(split)
        return int(getattr(self, split))

    def seeds(self, split: str) -> range:
        """The identity seeds of ``split``, in label order."""
        base = check_split(split) * SPLIT_SPAN
        return range(base, base + self.count(split))

    def seed(self, split: str, index: int) -> int:
        """The seed of identity ``index`` of ``split``."""
        count = self.count(split)
        if not 0 <= index < count:
            raise IndexError(f"{split} has identities 0..{count - 1}, asked for {index}")
        return check_split(split) * SPLIT_SPAN + index

    def label(self, split: str, index: int) -> int:
        """The class label of identity ``index`` of ``split`` (its index)."""
        self.seed(split, index)  # validates
        return index

    def identity(self, split: str, index: int) -> Identity:
        return Identity.from_seed(self.seed(split, index))

    @staticmethod
    def split_of(seed: int) -> str:
        """Which split an identity seed belongs to."""
        block = seed // SPLIT_SPAN
        if not 0 <= block < len(SPLITS):
            raise ValueError(f"seed {seed} is outside every split")
        return SPLITS[block]
