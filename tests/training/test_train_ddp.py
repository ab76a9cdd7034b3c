"""Two gloo processes (DDP) train like one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from networks.checkpoint import read_checkpoint
from training.config import DataConfig, LossWeights, TrainConfig
from training.distributed import distributed_session
from training.toy import ToyReenactmentDataset, toy_batch
from training.trainer import Trainer

# GAN off: the minibatch-stddev of D groups differently on a half batch, so
# only the reconstruction paths can match one process exactly.
CONFIG = TrainConfig(
    model="vicoface-32t", stage="mixture", cross_target="ground_truth", steps=3, batch_size=4,
    losses=replace(LossWeights.vicoface(), gan_g=0.0, gan_cross_g=0.0, cycle_l1=1.0),
    data=DataConfig(size=32), log_every=1, sample_every=0, checkpoint_every=0,
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(rank: int, world_size: int, port: int, run_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    with distributed_session("cpu") as env:
        trainer = Trainer(CONFIG, ToyReenactmentDataset(), toy_batch, run_dir, env, progress=False)
        trainer.train()


def _log(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("time")
    return records


@pytest.mark.timeout(300)
def test_two_gloo_ranks_match_one_process(tmp_path, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    mp.spawn(_train, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    torch.set_num_threads(1)
    single = tmp_path / "single"
    with distributed_session("cpu") as env:
        assert not env.distributed
        Trainer(CONFIG, ToyReenactmentDataset(), toy_batch, single, env, progress=False).train()

    log_ddp, log_one = _log(tmp_path / "ddp"), _log(single)
    assert len(log_ddp) == len(log_one) == 3
    for a, b in zip(log_ddp, log_one, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    name = "step_0000003.safetensors"
    gen_ddp = read_checkpoint(tmp_path / "ddp" / "checkpoints" / name).generator
    gen_one = read_checkpoint(single / "checkpoints" / name).generator
    for key, value in gen_one.items():
        assert torch.allclose(gen_ddp[key], value, atol=1e-5, rtol=1e-4), key
