"""The study's training runs: auxiliary networks, stage 1 to its plateau, stage 2.

Every run resumes from what its directory holds, so an interrupted study
continues where it stopped. Stage 2 runs are independent once stage 1 is
done; `train_stage2` trains ``jobs`` of them at once in spawned processes,
each with its own thread budget (on 2 cores, two 1-thread runs train more
steps per second together than one 2-thread run).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from networks.generator import Generator
from networks.motion import MotionMode
from training.aux_nets import AuxTrainConfig, load_aux_net, save_aux_net
from training.aux_training import train_world_aux
from training.checkpointing import checkpoint_paths
from training.config import TrainConfig
from training.distributed import DistEnv
from training.study.config import StudyConfig, StudyPaths, stage1_config
from training.study.pairs import CrossPairs
from training.trainer import Trainer
from training.world.dataset import MixtureDataset, SelfReenactmentDataset, WorldDataConfig
from training.worldset import default_world, world_batch

log = logging.getLogger(__name__)

JUDGE_IDENTITIES = 400
"""Training identities of the judge (the L_id network of arm B sees 200)."""
JUDGE_SEED = 1000


def _cpu() -> DistEnv:
    return DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def train_aux_networks(study: StudyConfig, paths: StudyPaths) -> dict[str, float]:
    """L_id / L_lmk networks for arm B and the separate identity judge.

    Returns ``{name: {"loss": held-out batch loss, "seconds": training time}}``
    of every network this study directory trained (kept in ``aux/aux.json``).
    """
    plan = {
        "identity": ("identity", 200, AuxTrainConfig(steps=study.aux_steps, seed=0)),
        "landmarks": ("landmarks", 200, AuxTrainConfig(steps=study.aux_steps, seed=0)),
        "judge": (
            "identity",
            JUDGE_IDENTITIES,
            AuxTrainConfig(steps=study.judge_steps, seed=JUDGE_SEED),
        ),
    }
    record_path = paths.aux / "aux.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for name, (kind, identities, config) in plan.items():
        path = paths.aux / f"{name}.safetensors"
        if path.is_file():
            continue
        started = time.monotonic()
        net, loss = train_world_aux(kind, study.size, 32, identities, config)
        save_aux_net(net, path)
        record[name] = {"loss": loss, "seconds": round(time.monotonic() - started, 1)}
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        log.warning("aux %s network: held-out batch loss %.4f", name, loss)
    return dict(record)


def load_judge(paths: StudyPaths) -> torch.nn.Module:
    judge = load_aux_net(paths.aux / "judge.safetensors")
    return judge.eval().requires_grad_(False)


@torch.no_grad()
def cross_psnr(generator: Generator, pairs: CrossPairs) -> float:
    """Mean cross PSNR of an absolute-mode (LIA) generator on ``pairs``."""
    from training.metrics import psnr_per_image

    was_training = generator.training
    generator.eval()
    values = [
        psnr_per_image(
            generator(pairs.avatar[rows], pairs.driver[rows], mode=MotionMode.ABSOLUTE),
            pairs.truth[rows],
        )
        for rows in pairs.chunks(64)
    ]
    generator.train(was_training)
    return float(torch.cat(values).mean())


@dataclass
class Plateau:
    """Stage 1's stopping rule and curve: ``[(step, val cross PSNR)]``, saved as JSON.

    The run stops once validation cross PSNR has gained less than
    ``min_gain_db`` in ``patience`` evaluations (``eval_every`` steps apart).
    """

    study: StudyConfig
    path: Path
    curve: list[tuple[int, float]]

    @classmethod
    def load(cls, study: StudyConfig, path: Path, resumed_step: int) -> Plateau:
        curve = json.loads(path.read_text())["curve"] if path.is_file() else []
        return cls(study, path, [(int(s), float(p)) for s, p in curve if s <= resumed_step])

    def add(self, step: int, psnr: float) -> None:
        self.curve.append((step, psnr))
        self.path.write_text(json.dumps({"curve": self.curve, "stopped_at": self.stopped_at}))

    @property
    def reached(self) -> bool:
        """True when the best of the last ``patience`` evaluations beats the best before
        them by less than ``min_gain_db`` (one noisy dip alone does not stop the run)."""
        patience = self.study.patience
        if len(self.curve) <= patience or self.curve[-1][0] < self.study.min_steps:
            return False
        recent = max(p for _, p in self.curve[-patience:])
        before = max(p for _, p in self.curve[:-patience])
        return recent - before < self.study.min_gain_db

    @property
    def stopped_at(self) -> int | None:
        return self.curve[-1][0] if self.reached else None


def train_stage1(study: StudyConfig, paths: StudyPaths, val: CrossPairs) -> dict[str, Any]:
    """LIA self-reenactment until validation cross PSNR plateaus; returns curve and timing."""
    config = stage1_config(study)
    record = paths.stage1 / "stage1.json"
    if paths.teacher.is_file() and record.is_file():
        return dict(json.loads(record.read_text()))
    world = default_world()
    data = SelfReenactmentDataset(world, WorldDataConfig(split="train", size=study.size, seed=0))
    trainer = Trainer(config, data, world_batch, paths.stage1, _cpu(), stream_data=True)
    trainer.resume()
    paths.stage1.mkdir(parents=True, exist_ok=True)
    plateau = Plateau.load(study, paths.stage1 / "curve.json", trainer.step)
    if not plateau.curve:
        plateau.add(trainer.step, cross_psnr(trainer.generator, val))

    def stop(step: int) -> bool:
        if step % study.eval_every:
            return False
        plateau.add(step, cross_psnr(trainer.generator, val))
        log.warning("stage 1 step %d: validation cross PSNR %.3f dB", step, plateau.curve[-1][1])
        return plateau.reached

    started = time.monotonic()
    if not plateau.reached:  # an interrupted study may have stopped right after the plateau
        trainer.train(stop=stop)
    checkpoint, _ = checkpoint_paths(trainer.checkpoint_dir, trainer.step)
    shutil.copyfile(checkpoint, paths.teacher)
    summary = {
        "steps": trainer.step,
        "plateau_reached": plateau.reached,
        "curve": plateau.curve,
        "seconds": round(time.monotonic() - started, 1),
    }
    record.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _final(run_dir: Path, steps: int) -> Path:
    return run_dir / "checkpoints" / f"step_{steps:07d}.safetensors"


def train_one(config_json: str, run_dir: str, threads: int) -> tuple[str, float]:
    """Train one stage-2 run to its end (resuming); returns its directory and seconds.

    A module-level function of plain arguments, so a spawned process can run it.
    """
    torch.set_num_threads(threads)
    config = TrainConfig.from_json(config_json)
    directory = Path(run_dir)
    started = time.monotonic()
    if _final(directory, config.steps).is_file():
        return run_dir, 0.0
    world = default_world()
    data_config = WorldDataConfig(split="train", size=config.data.size, seed=config.seed)
    data = MixtureDataset(world, data_config)  # both arms: the same items in the same order
    trainer = Trainer(
        config, data, world_batch, directory, _cpu(), progress=False, stream_data=True
    )
    trainer.resume()
    trainer.train()
    seconds = time.monotonic() - started
    (directory / "seconds.json").write_text(json.dumps({"seconds": round(seconds, 1)}) + "\n")
    return run_dir, seconds


def train_stage2(runs: Mapping[Path, TrainConfig], jobs: int, threads: int) -> dict[str, float]:
    """Train every run (``jobs`` at once); returns seconds per run directory."""
    from tqdm import tqdm

    pending = {d: c for d, c in runs.items() if not _final(d, c.steps).is_file()}
    seconds: dict[str, float] = {}
    if not pending:
        return seconds
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool,
        tqdm(total=len(pending), unit="run", desc="stage 2") as bar,
    ):
        futures = [pool.submit(train_one, c.to_json(), str(d), threads) for d, c in pending.items()]
        for future in as_completed(futures):
            run_dir, spent = future.result()
            seconds[run_dir] = spent
            bar.set_postfix_str(f"{Path(run_dir).name} {spent:.0f} s")
            bar.update(1)
    return seconds


def final_checkpoint(run_dir: Path, config: TrainConfig) -> Path:
    return _final(run_dir, config.steps)


def run_seconds(run_dir: Path) -> float | None:
    """Training seconds of a finished stage-2 run (None if it was never timed)."""
    path = run_dir / "seconds.json"
    return float(json.loads(path.read_text())["seconds"]) if path.is_file() else None


def log_seconds(log: Path) -> float | None:
    """Training seconds in a run's ``log.jsonl``, summed over its resumes.

    Each call of the trainer restarts the log's clock, so the total is the
    sum of each stretch's last time (the log is written every ``log_every``
    steps: the last steps of a stopped stretch are not counted).
    """
    if not log.is_file():
        return None
    total, last = 0.0, 0.0
    for line in log.read_text().splitlines():
        now = float(json.loads(line)["time"])
        if now < last:
            total += last
        last = now
    return round(total + last, 1)


def add_wall_time(root: Path, seconds: float) -> float:
    """Add one call's wall time to the study's total under ``root``; returns the total."""
    path = root / "wall.json"
    total = float(json.loads(path.read_text())["seconds"]) if path.is_file() else 0.0
    total += seconds
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": round(total, 1)}) + "\n")
    return total


__all__ = [
    "Plateau",
    "add_wall_time",
    "cross_psnr",
    "final_checkpoint",
    "load_judge",
    "log_seconds",
    "run_seconds",
    "train_aux_networks",
    "train_one",
    "train_stage1",
    "train_stage2",
]
