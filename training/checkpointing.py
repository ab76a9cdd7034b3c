"""Training checkpoints: the model in the safe format + a sidecar with the training state.

A checkpoint at step k is two files in ``<run>/checkpoints/``:

* ``step_<k>.safetensors``: the generator and the discriminator with their
  configs and training domain, written by ``networks.checkpoint.save_checkpoint``
  (what inference and ``vicocam eval`` load);
* ``step_<k>.state.pt``: everything else needed to continue exactly: both
  optimisers, the GradScaler, the step (= data position, see
  ``training.sampler``), every RNG state and the TrainConfig JSON.
  ``torch.save`` of tensors / dicts / numbers / strings only, read back with
  ``weights_only=True`` (no code runs at load).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from networks.checkpoint import TrainingDomain, save_checkpoint
from networks.discriminator import Discriminator
from networks.generator import Generator
from training.config import TrainConfig

_STEP_FILE = re.compile(r"step_(\d+)\.safetensors$")
# TrainConfig fields a resumed run may change without changing the curve.
RESUMABLE_CHANGES = frozenset(
    {"steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "amp"}
)


def capture_rng() -> dict[str, Any]:
    """Every RNG state as tensors (weights_only-loadable)."""
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_rest": torch.tensor([np_pos, np_has_gauss, np_gauss], dtype=torch.float64),
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": None if py_gauss is None else float(py_gauss),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    torch.set_rng_state(state["torch"])
    pos, has_gauss, gauss = state["numpy_rest"].tolist()
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), float(gauss)))
    py_state = tuple(int(v) for v in state["python"].tolist())
    random.setstate((state["python_version"], py_state, state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_model(
    path: Path, generator: Generator, discriminator: Discriminator | None, step: int,
    domain: TrainingDomain,
) -> None:
    """G (and D) with their configs and training domain in networks' safe format,
    written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    save_checkpoint(tmp, generator, discriminator, metadata={"step": str(step)}, domain=domain)
    tmp.replace(path)


def export_generator(source: Path, destination: Path, metadata: dict[str, str],
                     domain: TrainingDomain | None = None) -> None:
    """Copy only the generator (+ config and ``metadata``) of a training checkpoint.

    What ships for inference: without the discriminator the file is about a
    third smaller. ``domain`` ``None`` keeps the source's training domain.
    """
    from networks.checkpoint import checkpoint_domain, load_generator

    generator = load_generator(source)
    domain = domain or checkpoint_domain(source)
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(destination, generator, None, metadata=metadata, domain=domain)


def checkpoint_paths(directory: Path, step: int) -> tuple[Path, Path]:
    """``(model file, sidecar)`` of the checkpoint at ``step``."""
    return directory / f"step_{step:07d}.safetensors", directory / f"step_{step:07d}.state.pt"


def list_checkpoints(directory: Path) -> list[int]:
    """Steps with both files present, ascending."""
    if not directory.is_dir():
        return []
    steps = []
    for path in directory.iterdir():
        match = _STEP_FILE.search(path.name)
        if match and checkpoint_paths(directory, int(match.group(1)))[1].is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Write the sidecar atomically (a crash never leaves a half-written file)."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_training_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"training state not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "step" not in state or "train_config" not in state:
        raise ValueError(f"{path} is not a vicocam training state (no step / train_config)")
    return state


def check_resumable(saved_json: str, current: TrainConfig) -> None:
    """Refuse to resume when the run's recipe changed (only intervals/steps may differ).

    Raises ValueError naming every changed field and what to do.
    """
    saved = asdict(TrainConfig.from_json(saved_json))
    now = asdict(current)
    # Data worker processes change the speed, never the batches.
    saved["data"]["num_workers"] = now["data"]["num_workers"]
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume: the checkpoint was trained with a different configuration ({detail})."
            " Resume with the original settings, or start a new run directory."
        )


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (keep <= 0 keeps all)."""
    if keep <= 0:
        return
    for step in list_checkpoints(directory)[:-keep]:
        for path in checkpoint_paths(directory, step):
            path.unlink(missing_ok=True)


__all__ = [
    "RESUMABLE_CHANGES",
    "capture_rng",
    "check_resumable",
    "checkpoint_paths",
    "export_generator",
    "list_checkpoints",
    "load_training_state",
    "prune_checkpoints",
    "restore_rng",
    "save_model",
    "save_training_state",
]
