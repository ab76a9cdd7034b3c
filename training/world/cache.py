"""An optional on-disk cache of rendered clips, for sizes too slow to render live.

Layout: ``root/{split}-{size}/`` holds uint8/float32 ``.npy`` arrays indexed
``[identity, clip, frame]`` (read through memory maps) and ``meta.json``,
written last, which records the world it was built from. A cache built from a
different world (other split sizes, clip settings or renderer version) is
refused with a message to rebuild it.

Only the frames of each identity's own clips are cached; cross-reenactment
ground truth (identity A with B's motion) is rendered live.

Per frame the cache stores ``S*S*4 + 9*K`` bytes (image, labels, landmarks,
visibility), about 66 KB at 128 px: 2000 identities x 4 clips x 100 frames is
52 GB, so size the world to the disk.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from training.world.landmarks import LANDMARK_NAMES
from training.world.render import Render, outline_band
from training.world.splits import check_split
from training.world.world import FrameRef, World

CACHE_VERSION = 1
"""Bump when the renderer's output changes, so old caches are rebuilt."""

_ARRAYS = ("images", "labels", "landmarks", "visible")


def cache_dir(root: Path, split: str, size: int) -> Path:
    check_split(split)
    return Path(root) / f"{split}-{size}"


def _describe(world: World, split: str, size: int) -> dict[str, Any]:
    """What a cache must match, as JSON-ready values."""
    return json.loads(
        json.dumps(
            {
                "version": CACHE_VERSION,
                "split": split,
                "size": size,
                "splits": asdict(world.splits),
                "clips": asdict(world.clips),
                "landmarks": list(LANDMARK_NAMES),
            }
        )
    )


def _shapes(world: World, split: str, size: int) -> dict[str, tuple[tuple[int, ...], type]]:
    lead = (world.splits.count(split), world.clips.clips_per_identity, world.clips.frames)
    k = len(LANDMARK_NAMES)
    return {
        "images": ((*lead, size, size, 3), np.uint8),
        "labels": ((*lead, size, size), np.uint8),
        "landmarks": ((*lead, k, 2), np.float32),
        "visible": ((*lead, k), np.bool_),
    }


def build_cache(
    world: World,
    split: str,
    size: int,
    root: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render every frame of every clip of ``split`` into ``root``; returns the cache folder.

    ``progress(done, total)`` is called after each identity. An existing
    cache for the same split and size is replaced.
    """
    folder = cache_dir(root, split, size)
    shapes = _shapes(world, split, size)
    needed = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in shapes.values())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)  # marks the cache incomplete
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OSError(
            f"the {split}-{size} cache needs {needed / 1e9:.1f} GB but {folder} has "
            f"{free / 1e9:.1f} GB free; use fewer identities, clips or frames, or another disk"
        )
    arrays = {
        name: np.lib.format.open_memmap(folder / f"{name}.npy", "w+", dtype, shape)
        for name, (shape, dtype) in shapes.items()
    }
    count, clips, frames = shapes["images"][0][:3]
    for i in range(count):
        for c in range(clips):
            for t in range(frames):
                _store(arrays, (i, c, t), world.render(FrameRef(split, i, c, t), size))
        if progress is not None:
            progress(i + 1, count)
    for array in arrays.values():
        array.flush()
    (folder / "meta.json").write_text(json.dumps(_describe(world, split, size), indent=1))
    return folder


def _store(arrays: dict[str, np.memmap], at: tuple[int, int, int], frame: Render) -> None:
    arrays["images"][at] = frame.image
    arrays["labels"][at] = frame.labels
    arrays["landmarks"][at] = frame.landmarks
    arrays["visible"][at] = frame.landmark_visible


class FrameCache:
    """Read-only access to a cache built by `build_cache` for one split and size.

    Memory maps open on first use, and are not pickled, so a cache can be
    handed to DataLoader workers cheaply.
    """

    def __init__(self, root: Path, world: World, split: str, size: int) -> None:
        self.folder = cache_dir(root, split, size)
        self.split, self.size = split, size
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no complete world cache at {self.folder}; build it with "
                f"training.world.cache.build_cache(world, {split!r}, {size}, root)"
            )
        if json.loads(meta_path.read_text()) != _describe(world, split, size):
            raise ValueError(
                f"the cache at {self.folder} was built from a different world "
                "(split sizes, clip settings or renderer version); rebuild it with build_cache"
            )
        self._arrays: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {n: np.load(self.folder / f"{n}.npy", mmap_mode="r") for n in _ARRAYS}
        return self._arrays

    def covers(self, ref: FrameRef, size: int) -> bool:
        return ref.split == self.split and size == self.size

    def render(self, ref: FrameRef) -> Render:
        """The cached frame; identical to ``world.render(ref, size)``."""
        arrays = self._open()
        at = (ref.identity, ref.clip, ref.frame)
        labels = np.array(arrays["labels"][at])
        return Render(
            image=np.array(arrays["images"][at]),
            landmarks=np.array(arrays["landmarks"][at]),
            landmark_visible=np.array(arrays["visible"][at]),
            labels=labels,
            face_outline=outline_band(labels),
        )
