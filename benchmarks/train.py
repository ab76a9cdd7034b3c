"""``vicocam bench train``: training steps per second of the small configuration on CPU.

Question answered: how many optimiser steps per second does one CPU process
make on the demo recipe (``vicoface-64s``, mixture with ground-truth cross
targets, batch 8, synthetic world rendered in-process)? The first two steps
are warm-up and not timed.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import replace
from typing import Any

BENCH_MODEL = "vicoface-64s"
BENCH_BATCH = 8
WARMUP_STEPS = 2


def _config(steps: int) -> Any:
    from training.config import DataConfig, LossWeights, TrainConfig

    losses = replace(
        LossWeights.vicoface(), gan_g=0.0, gan_cross_g=0.0, cycle_vgg=0.0, identity=0.0,
        landmarks=0.0,
    )  # fmt: skip
    return TrainConfig.vicoface(
        model=BENCH_MODEL, cross_target="ground_truth", steps=steps, batch_size=BENCH_BATCH,
        losses=losses, data=DataConfig(size=64), log_every=0, sample_every=0,
        checkpoint_every=-1,
    )  # fmt: skip


def run_train_bench(seconds: float | None = None) -> dict[str, Any]:
    """Train for about ``seconds`` (default 60) and report ``steps_per_second``."""
    import torch

    from training.distributed import DistEnv
    from training.trainer import Trainer
    from training.worldset import default_world, training_dataset, world_batch

    budget = 60.0 if seconds is None else seconds
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    dataset = training_dataset(default_world(), "mixture", 64)
    stamps: list[float] = []

    class _BudgetSpentError(Exception):
        """Raised from the step callback to end the timed run."""

    def on_step(step: int, _terms: dict[str, float]) -> None:
        stamps.append(time.perf_counter())
        if step > WARMUP_STEPS and stamps[-1] - stamps[WARMUP_STEPS - 1] >= budget:
            raise _BudgetSpentError

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(_config(1_000_000), dataset, world_batch, run_dir, env, False, True)
        with contextlib.suppress(_BudgetSpentError):
            trainer.train(on_step=on_step)
    timed = len(stamps) - WARMUP_STEPS
    elapsed = stamps[-1] - stamps[WARMUP_STEPS - 1] if timed > 0 else float("nan")
    return {
        "model": BENCH_MODEL,
        "recipe": "mixture, cross_target=ground_truth, L1 + edge (no GAN / VGG)",
        "batch_size": BENCH_BATCH,
        "image_size": 64,
        "threads": torch.get_num_threads(),
        "steps_timed": timed,
        "seconds": round(elapsed, 3),
        "steps_per_second": round(timed / elapsed, 4) if timed > 0 else 0.0,
        "samples_per_second": round(timed * BENCH_BATCH / elapsed, 3) if timed > 0 else 0.0,
    }


__all__ = ["run_train_bench"]
