"""Deterministic sampling shared by the world and the real-data datasets.

Every dataset here draws the randomness of item ``index`` from a generator
keyed by ``(seed, stream, position)``, where ``position = epoch * len(ds) +
index``. An item is therefore a pure function of the dataset's config and its
position: no state carries over between items, workers or runs.

Resuming a run exactly: a trainer that has consumed ``n`` items in total
(``step * batch_size``) builds its loader with
``DataLoader(ds, batch_size, sampler=StreamSampler(start=n))`` and leaves the
epoch at 0; positions beyond ``len(ds)`` simply continue into later epochs.
The classic alternative, ``ds.set_epoch(e)`` plus a sequential sampler
starting at the batch offset within the epoch, gives the same items (but
``set_epoch`` does not reach already-started ``persistent_workers``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def init_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=init_worker)``: one torch thread per worker.

    Otherwise every worker starts a torch thread per core and oversubscribes
    the machine. OpenCV's thread count is deliberately left alone: calling
    ``cv2.setNumThreads`` in a *forked* worker after the parent used OpenCV
    deadlocks that worker (seen with OpenCV 5, most runs). To limit OpenCV too,
    call ``cv2.setNumThreads(1)`` in the parent before the loader starts, or
    use ``multiprocessing_context="spawn"``. Items do not depend on the worker.
    """
    del worker_id
    torch.set_num_threads(1)


def item_rng(seed: int, stream: int, position: int) -> np.random.Generator:
    """The generator for one item of one dataset."""
    if position < 0:
        raise IndexError(f"dataset positions are non-negative, got {position}")
    return np.random.default_rng([seed, stream, position])


class StreamSampler(Sampler[int]):
    """Positions ``start, start + 1, ...``: ``count`` of them, or forever if None."""

    def __init__(self, start: int = 0, count: int | None = None) -> None:
        if start < 0 or (count is not None and count < 0):
            raise ValueError(f"need start >= 0 and count >= 0, got {start}, {count}")
        self.start, self.count = start, count

    def __iter__(self) -> Iterator[int]:
        position = self.start
        while self.count is None or position < self.start + self.count:
            yield position
            position += 1

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("an endless StreamSampler has no length; pass count")
        return self.count


def sample_frame_pair(g: np.random.Generator, length: int, min_gap: int) -> tuple[int, int]:
    """Two distinct frame indices of a ``length``-frame clip, ``|i - j| > min_gap`` if possible.

    When the clip is too short for the gap (``length <= min_gap + 1``) the
    pair is only required to be distinct. Pairs are uniform over the valid
    ordered pairs.
    """
    if length < 2:
        raise ValueError(f"a frame pair needs a clip of at least 2 frames, got {length}")
    gap = max(min_gap, 0) if length > min_gap + 1 else 0
    # |i - j| = d admits length - d ordered pairs each way: draw d by that weight.
    distances = np.arange(gap + 1, length)
    weights = (length - distances).astype(np.float64)
    d = int(g.choice(distances, p=weights / weights.sum()))
    low = int(g.integers(0, length - d))
    return (low, low + d) if g.integers(2) == 0 else (low + d, low)
