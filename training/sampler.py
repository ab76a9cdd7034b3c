"""A batch sampler indexed by the optimiser step, so the data position is just the step.

Global sample ``g = step * global_batch + j`` is element ``g mod N`` of the
permutation of epoch ``g div N`` (seeded by ``(seed, epoch)``). Rank ``r``
takes ``j`` in ``[r * B_local, (r + 1) * B_local)``. Resuming at step ``k``
therefore yields exactly the batches an uninterrupted run would have seen,
and the union over ranks of one step's batch is the single-process batch.

With ``stream=True`` the index is ``g`` itself (for datasets whose items are a
pure function of an unbounded position, like the synthetic world's).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_permutation(length: int, seed: int, epoch: int) -> torch.Tensor:
    """The deterministic order ``[length]`` of one epoch."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(length, generator=gen)


class StepBatchSampler(Sampler[list[int]]):
    """Yields this rank's index list for steps ``start_step .. total_steps - 1``."""

    def __init__(
        self,
        length: int,
        global_batch: int,
        total_steps: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        stream: bool = False,
    ) -> None:
        if length < 1:
            raise ValueError("the dataset is empty")
        if global_batch % world_size:
            raise ValueError(
                f"global batch {global_batch} must be a multiple of the {world_size} ranks"
            )
        self.length, self.global_batch, self.total_steps = length, global_batch, total_steps
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.start_step = start_step
        self.stream = stream
        self.local_batch = global_batch // world_size

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def indices_for(self, step: int) -> list[int]:
        first = step * self.global_batch + self.rank * self.local_batch
        if self.stream:
            return list(range(first, first + self.local_batch))
        out: list[int] = []
        cached_epoch, perm = -1, torch.empty(0, dtype=torch.long)
        for g in range(first, first + self.local_batch):
            epoch = g // self.length
            if epoch != cached_epoch:
                cached_epoch, perm = epoch, epoch_permutation(self.length, self.seed, epoch)
            out.append(int(perm[g % self.length]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            yield self.indices_for(step)


__all__ = ["StepBatchSampler", "epoch_permutation"]
