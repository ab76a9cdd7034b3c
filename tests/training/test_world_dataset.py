"""World datasets: shapes, ranges, exact ground truth, determinism and resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training.data.sampling import StreamSampler, init_worker
from training.data.tensors import image_to_tensor, tensor_to_image
from training.world.cache import FrameCache, build_cache
from training.world.dataset import (
    CrossEvalSet,
    MixtureDataset,
    SelfReenactmentDataset,
    WorldDataConfig,
)
from training.world.landmarks import LANDMARK_NAMES
from training.world.render import MASK_NAMES, render
from training.world.splits import WorldSplits
from training.world.world import ClipConfig, FrameRef, World

SIZE = 32
K = len(LANDMARK_NAMES)
CONFIG = WorldDataConfig(size=SIZE, min_gap=10, epoch_length=8)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def as_tensor(world: World, ref: FrameRef) -> torch.Tensor:
    return image_to_tensor(world.render(ref, SIZE).image)


def test_self_reenactment_items(small_world):
    ds = SelfReenactmentDataset(small_world, CONFIG)
    item = ds[3]
    for key in ("source", "target"):
        assert item[key].shape == (3, SIZE, SIZE) and item[key].dtype == torch.float32
        assert item[key].min() >= -1.0 and item[key].max() <= 1.0
    assert item["source_landmarks"].shape == (K, 2)
    assert item["label"].dtype == torch.int64
    plan = ds.plan(3)
    assert plan.source.identity == plan.target.identity == int(item["label"])
    assert plan.source.clip == plan.target.clip
    assert abs(plan.source.frame - plan.target.frame) > CONFIG.min_gap
    # Ground truth is consistent: the item is exactly that identity in that clip frame.
    identity = small_world.identity("train", plan.target.identity)
    motion = small_world.clip("train", plan.target.identity, plan.target.clip)[plan.target.frame]
    assert torch.equal(item["target"], image_to_tensor(render(identity, motion, SIZE).image))


def test_frame_gap_holds_across_many_items(small_world):
    ds = SelfReenactmentDataset(small_world, CONFIG)
    gaps = [abs(p.source.frame - p.target.frame) for p in map(ds.plan, range(200))]
    assert min(gaps) > CONFIG.min_gap


def test_items_are_deterministic_per_position(small_world):
    ds = MixtureDataset(small_world, CONFIG)
    again = MixtureDataset(World(small_world.splits, small_world.clips), CONFIG)
    assert same(ds[5], again[5])
    assert not same(ds[5], ds[6])
    other_seed = MixtureDataset(small_world, WorldDataConfig(**{**vars(CONFIG), "seed": 1}))
    assert other_seed.plan(5) != ds.plan(5)


def test_mixture_items_carry_the_exact_cross_ground_truth(small_world):
    ds = MixtureDataset(small_world, CONFIG)
    item, plan = ds[2], ds.plan(2)
    assert plan.other.identity != plan.source.identity
    assert int(item["other_label"]) == plan.other.identity
    for key in ("source", "target", "other", "cross_target"):
        assert item[key].shape == (3, SIZE, SIZE)
    assert torch.equal(item["source"], as_tensor(small_world, plan.source))
    assert torch.equal(item["other"], as_tensor(small_world, plan.other))
    # x_{s->o}: the source's identity with the other frame's motion.
    identity = small_world.identity("train", plan.source.identity)
    truth = render(identity, small_world.motion(plan.other), SIZE)
    assert torch.equal(item["cross_target"], image_to_tensor(truth.image))
    assert torch.equal(item["cross_landmarks"], torch.from_numpy(truth.landmarks))
    assert item["source_masks"].shape == (len(MASK_NAMES), SIZE, SIZE)
    source = small_world.render(plan.source, SIZE)
    masks = torch.from_numpy(source.mask_stack().astype(np.float32))
    assert torch.equal(item["source_masks"], masks)
    # With its own motion, the cross path reproduces the source frame exactly.
    own = small_world.render_cross(plan.source, plan.source, SIZE)
    assert np.array_equal(own.image, source.image)


def test_other_identity_is_never_the_source(small_world):
    ds = MixtureDataset(small_world, CONFIG)
    plans = [ds.plan(i) for i in range(100)]
    assert all(p.other.identity != p.source.identity for p in plans)
    assert len({p.other.identity for p in plans}) == small_world.splits.train


def test_set_epoch_is_an_offset_of_positions(small_world):
    ds = MixtureDataset(small_world, CONFIG)
    later = MixtureDataset(small_world, CONFIG)
    later.set_epoch(2)
    assert later.plan(3) == ds.plan(2 * len(ds) + 3)
    assert later.plan(3) != ds.plan(3)


def test_a_resumed_loader_sees_exactly_the_same_batches(small_world):
    ds = SelfReenactmentDataset(small_world, CONFIG)
    full = list(DataLoader(ds, batch_size=2, sampler=StreamSampler(0, 10)))
    resumed = list(DataLoader(ds, batch_size=2, sampler=StreamSampler(6, 4)))
    assert len(resumed) == 2
    for a, b in zip(full[3:], resumed, strict=True):
        assert same(a, b)


def test_cross_eval_set_is_fixed_and_exact(small_world):
    evalset = CrossEvalSet(small_world, split="test", size=SIZE, pairs=4)
    again = CrossEvalSet(small_world, split="test", size=SIZE, pairs=4)
    item, plan = evalset[1], evalset.plan(1)
    assert same(item, again[1])
    assert plan.avatar.identity != plan.driver.identity
    assert plan.avatar.frame == 0 and plan.avatar.split == plan.driver.split == "test"
    avatar = small_world.identity("test", plan.avatar.identity)
    truth = render(avatar, small_world.motion(plan.driver), SIZE)
    assert torch.equal(item["target"], image_to_tensor(truth.image))
    assert torch.equal(item["driver"], as_tensor(small_world, plan.driver))
    assert item["target_masks"].shape == (len(MASK_NAMES), SIZE, SIZE)
    with pytest.raises(IndexError):
        evalset.plan(4)


def test_bad_configs_are_rejected(small_world):
    with pytest.raises(ValueError, match="lengthen"):
        SelfReenactmentDataset(small_world, WorldDataConfig(size=SIZE, min_gap=39))
    with pytest.raises(ValueError, match="unknown split"):
        MixtureDataset(small_world, WorldDataConfig(split="dev"))
    lonely = World(WorldSplits(train=1, val=0, test=0), ClipConfig(frames=40))
    with pytest.raises(ValueError, match="at least 2 identities"):
        MixtureDataset(lonely, CONFIG)


def test_cache_serves_byte_identical_frames(tmp_path):
    world = World(WorldSplits(train=2, val=2, test=2), ClipConfig(clips_per_identity=1, frames=14))
    progress: list[tuple[int, int]] = []
    build_cache(world, "val", SIZE, tmp_path, lambda done, total: progress.append((done, total)))
    assert progress[-1] == (2, 2)
    cache = FrameCache(tmp_path, world, "val", SIZE)
    ref = FrameRef("val", 1, 0, 9)
    cached, live = cache.render(ref), world.render(ref, SIZE)
    for field in ("image", "landmarks", "landmark_visible", "labels", "face_outline"):
        assert np.array_equal(getattr(cached, field), getattr(live, field)), field
    config = WorldDataConfig(split="val", size=SIZE, min_gap=5, epoch_length=4)
    with_cache = MixtureDataset(world, config, cache)
    assert same(with_cache[1], MixtureDataset(world, config)[1])


def test_cache_refuses_another_world_or_a_missing_build(tmp_path):
    world = World(WorldSplits(train=2, val=2, test=2), ClipConfig(clips_per_identity=1, frames=3))
    build_cache(world, "test", SIZE, tmp_path)
    other = World(WorldSplits(train=2, val=2, test=2), ClipConfig(clips_per_identity=1, frames=4))
    with pytest.raises(ValueError, match="rebuild"):
        FrameCache(tmp_path, other, "test", SIZE)
    with pytest.raises(FileNotFoundError, match="build_cache"):
        FrameCache(tmp_path, world, "val", SIZE)
    cache = FrameCache(tmp_path, world, "test", SIZE)
    with pytest.raises(ValueError, match="the cache holds"):
        MixtureDataset(world, WorldDataConfig(split="val", size=SIZE, min_gap=1), cache)


def test_forked_workers_serve_the_same_items(small_world):
    ds = MixtureDataset(small_world, CONFIG)
    # The parent uses OpenCV's and torch's thread pools before the workers
    # fork, as a trainer does; a worker init touching OpenCV then deadlocks.
    MixtureDataset(small_world, WorldDataConfig(size=128, min_gap=10))[0]
    loader = DataLoader(
        ds,
        batch_size=2,
        sampler=StreamSampler(0, 4),
        num_workers=2,
        worker_init_fn=init_worker,
        timeout=30,
    )
    reference = DataLoader(ds, batch_size=2, sampler=StreamSampler(0, 4))
    for a, b in zip(loader, reference, strict=True):
        assert same(a, b)


def test_image_tensor_round_trip_is_exact():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    assert np.array_equal(tensor_to_image(tensor), image)
    with pytest.raises(ValueError, match="uint8 image"):
        image_to_tensor(image.astype(np.float32))
