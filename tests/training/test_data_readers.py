"""Real-data readers on a FOMM layout built from the shared driving videos."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from training.data.clips import FrameLRU, VideoClip
from training.data.dataset import RealDataConfig, RealPairDataset, RealTripletDataset
from training.data.layout import ClipKind, find_clips
from training.data.tensors import image_to_tensor, square_resize

SIZE = 64
FOLDER_FRAMES = 40


def decode_frames(video: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames, decoded sequentially (no seeking)."""
    with av.open(str(video)) as container:
        frames = container.decode(video=0)
        return [next(frames).to_ndarray(format="rgb24") for _ in range(count)]


def frame_count(video: Path) -> int:
    with av.open(str(video)) as container:
        return int(container.streams.video[0].frames)


@pytest.fixture(scope="module")
def video_root(shared_media, tmp_path_factory) -> Path:
    """root/{train,test}/*.mp4, linking the shared videos (not copying them)."""
    root = tmp_path_factory.mktemp("videos")
    for split, names in (("train", ("driving1", "driving2")), ("test", ("driving2",))):
        (root / split).mkdir()
        for name in names:
            (root / split / f"{name}.mp4").symlink_to(shared_media / f"{name}.mp4")
    (root / "train" / "notes.txt").write_text("not a clip")
    return root


@pytest.fixture(scope="module")
def frames_root(shared_media, tmp_path_factory) -> Path:
    """root/{train,test}/<clip>/%05d.png with the first frames of each video."""
    root = tmp_path_factory.mktemp("frames")
    for split, names in (("train", ("driving1", "driving2")), ("test", ("driving1",))):
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, frame in enumerate(decode_frames(shared_media / f"{name}.mp4", FOLDER_FRAMES)):
                cv2.imwrite(str(folder / f"{i:05d}.png"), frame[..., ::-1])
    return root


def test_layout_finds_video_and_frame_clips(video_root, frames_root):
    videos = find_clips(video_root, "train")
    assert [(c.name, c.kind) for c in videos] == [
        ("driving1", ClipKind.VIDEO),
        ("driving2", ClipKind.VIDEO),
    ]
    folders = find_clips(frames_root, "train")
    assert [(c.name, c.kind) for c in folders] == [
        ("driving1", ClipKind.FRAMES),
        ("driving2", ClipKind.FRAMES),
    ]


def test_layout_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_clips(tmp_path / "nowhere", "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no test/ folder .*train"):
        find_clips(tmp_path, "test")
    (tmp_path / "train" / "empty_clip").mkdir()
    with pytest.raises(ValueError, match="holds no clips"):
        find_clips(tmp_path, "train")


def test_video_clip_seeks_to_the_same_frames_as_a_sequential_decode(shared_media):
    video = shared_media / "driving1.mp4"
    clip = VideoClip(video, SIZE, FrameLRU())
    assert len(clip) == frame_count(video)
    reference = decode_frames(video, 262)
    # 261 lies past the second keyframe: seeking must land on it exactly.
    for index in (261, 0, 7, 255):
        assert np.array_equal(clip.frame(index), square_resize(reference[index], SIZE)), index


def test_video_frames_decoded_on_the_way_are_cached(shared_media):
    cache = FrameLRU()
    clip = VideoClip(shared_media / "driving2.mp4", SIZE, cache)
    first = clip.frame(30)
    assert len(cache) == 31  # decoded from the keyframe at 0 up to 30
    assert clip.frame(30) is first and clip.frame(12) is cache.get((str(clip.path), 12))
    with pytest.raises(IndexError, match=r"frames 0\.\.220"):
        clip.frame(221)


def test_frame_lru_stays_within_its_byte_bound():
    frame = np.zeros((8, 8, 3), np.uint8)
    cache = FrameLRU(max_bytes=3 * frame.nbytes)
    for i in range(5):
        cache.put(("clip", i), frame.copy())
    assert len(cache) == 3 and cache.bytes == 3 * frame.nbytes
    assert cache.get(("clip", 0)) is None and cache.get(("clip", 4)) is not None


def test_a_broken_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ValueError, match="cannot open video"):
        len(VideoClip(bad, SIZE))


@pytest.mark.parametrize("layout", ["video_root", "frames_root"])
def test_pair_dataset_gives_two_distinct_frames_of_one_clip(layout, request):
    root = request.getfixturevalue(layout)
    ds = RealPairDataset(RealDataConfig(root, "train", size=SIZE, seed=3))
    assert len(ds) == 2
    item, plan = ds[1], ds.plan(1)
    assert item["source"].shape == item["driving"].shape == (3, SIZE, SIZE)
    assert item["source"].min() >= -1.0 and item["source"].max() <= 1.0
    assert plan.source != plan.target and int(item["clip"]) == plan.clip == 1
    clip = ds.clips[plan.clip]
    assert torch.equal(item["driving"], image_to_tensor(clip.frame(plan.target)))
    again = RealPairDataset(RealDataConfig(root, "train", size=SIZE, seed=3))
    assert all(torch.equal(item[k], again[1][k]) for k in item)


def test_frame_folder_clip_matches_the_extracted_frames(frames_root, shared_media):
    ds = RealPairDataset(RealDataConfig(frames_root, "test", size=SIZE))
    reference = decode_frames(shared_media / "driving1.mp4", FOLDER_FRAMES)
    clip = ds.clips[0]
    assert len(clip) == FOLDER_FRAMES
    for index in (0, 17, FOLDER_FRAMES - 1):  # PNG is lossless
        assert np.array_equal(clip.frame(index), square_resize(reference[index], SIZE))


@pytest.mark.parametrize("layout", ["video_root", "frames_root"])
def test_triplets_respect_the_gap_and_use_another_clip(layout, request):
    root = request.getfixturevalue(layout)
    ds = RealTripletDataset(RealDataConfig(root, "train", size=SIZE, min_gap=30))
    for index in range(len(ds)):
        plan = ds.plan(index)
        assert abs(plan.source - plan.target) > 30
        assert plan.other_clip != plan.clip
        assert 0 <= plan.other_frame < len(ds.clips[plan.other_clip])
    item = ds[0]
    assert {k: tuple(v.shape) for k, v in item.items() if v.dim() == 3} == {
        "source": (3, SIZE, SIZE),
        "target": (3, SIZE, SIZE),
        "other": (3, SIZE, SIZE),
    }


def test_short_clips_fall_back_to_distinct_frames(frames_root):
    ds = RealTripletDataset(RealDataConfig(frames_root, "train", size=SIZE, min_gap=FOLDER_FRAMES))
    plans = [ds.plan(i) for i in range(20)]
    assert all(p.source != p.target for p in plans)


def test_triplets_need_two_clips(video_root):
    with pytest.raises(ValueError, match="triplets need a second clip"):
        RealTripletDataset(RealDataConfig(video_root, "test", size=SIZE))
