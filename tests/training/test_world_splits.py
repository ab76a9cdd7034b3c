"""Identity splits are disjoint by construction and labelled contiguously."""

from __future__ import annotations

import pytest

from training.world.splits import SPLIT_SPAN, SPLITS, WorldSplits


def test_split_seeds_are_disjoint_even_at_the_maximum_size():
    splits = WorldSplits(train=SPLIT_SPAN, val=SPLIT_SPAN, test=SPLIT_SPAN)
    ranges = [splits.seeds(s) for s in SPLITS]
    for a in range(len(ranges)):
        for b in range(a + 1, len(ranges)):
            assert ranges[a].stop <= ranges[b].start


def test_seed_label_and_split_of_agree():
    splits = WorldSplits(train=10, val=4, test=4)
    for split in SPLITS:
        for index in range(splits.count(split)):
            seed = splits.seed(split, index)
            assert splits.label(split, index) == index
            assert WorldSplits.split_of(seed) == split
            assert seed in splits.seeds(split)
    assert splits.identity("val", 2) == splits.identity("val", 2)
    assert splits.identity("val", 2) != splits.identity("test", 2)


def test_bad_requests_are_clear_errors():
    splits = WorldSplits(train=3, val=1, test=1)
    with pytest.raises(IndexError, match=r"identities 0\.\.2"):
        splits.seed("train", 3)
    with pytest.raises(ValueError, match="unknown split"):
        splits.count("holdout")
    with pytest.raises(ValueError, match="must hold"):
        WorldSplits(train=SPLIT_SPAN + 1)
    with pytest.raises(ValueError, match="outside every split"):
        WorldSplits.split_of(len(SPLITS) * SPLIT_SPAN)
