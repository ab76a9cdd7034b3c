"""Process-group setup for one process or many (torchrun / DistributedDataParallel).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; without them the run is a single process and nothing is
initialised. The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits.

    Attributes:
        rank: global rank (0 is the one that logs, samples and saves).
        world_size: number of processes; 1 means no process group.
        local_rank: rank on this machine (picks the GPU).
        device: the device this rank computes on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_from(environ: Mapping[str, str], cuda: bool) -> DistEnv:
    """The DistEnv described by torchrun's variables in ``environ`` (defaults: single process)."""
    rank = int(environ.get("RANK", "0"))
    world = int(environ.get("WORLD_SIZE", "1"))
    local = int(environ.get("LOCAL_RANK", "0"))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    return DistEnv(rank, world, local, device)


@contextmanager
def distributed_session(device: str = "auto") -> Iterator[DistEnv]:
    """Initialise the process group when launched by torchrun; tear it down after.

    ``device``: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    """
    cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    env = env_from(os.environ, cuda)
    started = False
    if env.distributed and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(env.device)
        dist.init_process_group("nccl" if cuda else "gloo")
        started = True
    try:
        yield env
    finally:
        if started:
            dist.destroy_process_group()


def mean_over_ranks(values: dict[str, float], env: DistEnv) -> dict[str, float]:
    """Average scalars over the ranks (for logging); identity in one process."""
    if not env.distributed or not values:
        return values
    keys = sorted(values)
    packed = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=env.device)
    dist.all_reduce(packed)
    packed /= env.world_size
    return dict(zip(keys, packed.tolist(), strict=True))


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


__all__ = ["DistEnv", "barrier", "distributed_session", "env_from", "mean_over_ranks"]
