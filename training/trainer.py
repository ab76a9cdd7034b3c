"""The training loop: LIA self-reenactment and ViCoFace mixture training (spec A.7, B.3).

One `Trainer` per process. In one process it trains on the CPU (or a GPU);
launched by ``torchrun`` it wraps the step modules in DistributedDataParallel
(gloo on CPU, NCCL on CUDA) and each rank takes its slice of every global
batch (``training.sampler``). Rank 0 alone shows progress, logs JSON lines,
writes sample grids and checkpoints.

Per step: the generator paths (``training.paths``) and their losses, one G
update; then, when a GAN term is on, one D update on x_t (real) and the
detached fakes. Resume is exact: model, optimisers, GradScaler, RNG states
and the step (which is the data position) come back from the checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from networks.checkpoint import TrainingDomain, read_checkpoint, read_release_checkpoint
from networks.config import DiscriminatorConfig
from networks.discriminator import Discriminator
from networks.generator import Generator
from training import checkpointing as ckpt
from training.config import TrainConfig
from training.distributed import DistEnv, barrier, mean_over_ranks
from training.losses import (
    discriminator_adv_loss,
)
from training.models import resolve_model_config
from training.objectives import Objectives, build_objectives
from training.paths import DiscriminatorLogits, ReenactmentPaths, TrainBatch, first_rows
from training.sampler import StepBatchSampler
from training.samples import save_sample_grid

log = logging.getLogger(__name__)

BatchAdapter = Callable[[Mapping[str, Any]], TrainBatch]


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or resumed-and-finished) run reports."""

    final_step: int
    last_losses: dict[str, float]
    checkpoint: Path | None
    seconds: float


def build_models(config: TrainConfig) -> tuple[Generator, Discriminator]:
    """G and D for ``config.model``, seeded so every rank builds identical weights."""
    model_config = resolve_model_config(config.model)
    if model_config.size != config.data.size:
        raise ValueError(
            f"model {config.model} is {model_config.size} px but the data is"
            f" {config.data.size} px; set data.size to {model_config.size}"
        )
    torch.manual_seed(config.seed)
    generator = Generator(model_config)
    discriminator = Discriminator(DiscriminatorConfig.for_model(model_config))
    if config.init_checkpoint:
        initialise_from(generator, discriminator, config.init_checkpoint, config.seed)
    return generator, discriminator


def initialise_from(
    generator: Generator, discriminator: Discriminator, path: str, seed: int
) -> None:
    """Load G (and D when present) from a vicocam or release checkpoint.

    A LIA generator into a ViCoFace config is converted by
    ``training.finetune.lia_to_vicoface`` (see there for the new directions).
    """
    from networks.checkpoint import checkpoint_format, load_checked

    if checkpoint_format(path) == "torch":
        release = read_release_checkpoint(path)
        gen_state, dis_state, family = (
            release.generator,
            release.discriminator,
            release.config.family,
        )
    else:
        saved = read_checkpoint(path)
        gen_state, dis_state, family = saved.generator, saved.discriminator, saved.config.family
    if family == "lia" and generator.config.family == "vicoface":
        from training.finetune import lia_to_vicoface

        gen_state = lia_to_vicoface(gen_state, generator.config, seed=seed)
    load_checked(generator, gen_state, f"config {generator.config.name!r}")
    if dis_state is not None:
        load_checked(discriminator, dis_state, "the discriminator")


def freeze_unused(generator: Generator, paths: ReenactmentPaths) -> list[str]:
    """Stop grads on parameters no path reaches (``to_rgb1``, noise weights...).

    DDP without ``find_unused_parameters`` needs every trainable parameter to
    get a gradient each step; a dry run on a 2-sample zero batch finds the
    ones that never do. Returns their names.
    """
    size = generator.config.size
    zeros = torch.zeros(2, 3, size, size, device=next(generator.parameters()).device)
    outputs = paths(zeros, zeros, zeros if paths.cross else None)
    torch.stack([o.sum() for o in outputs.values()]).sum().backward()
    unused = [n for n, p in generator.named_parameters() if p.requires_grad and p.grad is None]
    for name, param in generator.named_parameters():
        param.grad = None
        if name in unused:
            param.requires_grad_(False)
    return unused


def _autocast(env: DistEnv, enabled: bool) -> AbstractContextManager[Any]:
    if env.device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


class Trainer:
    """Trains one run in ``run_dir`` (see module doc).

    ``dataset[i]`` returns a sample dict; ``adapter`` turns a collated batch
    dict into a `TrainBatch`. ``progress`` shows a tqdm bar on rank 0.
    ``stream_data``: index the dataset by the global sample number (for
    position-addressed datasets) instead of per-epoch permutations.
    ``domain``: what ``dataset`` shows (the synthetic world, or real clips);
    every checkpoint records it, so a model of the synthetic world is
    recognised when it is asked to animate real faces.
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset[Any],
        adapter: BatchAdapter,
        run_dir: str | Path,
        env: DistEnv,
        progress: bool = True,
        stream_data: bool = False,
        domain: TrainingDomain = TrainingDomain.SYNTHETIC_WORLD,
    ) -> None:
        self.stream_data = stream_data
        self.domain = domain
        self.config, self.dataset, self.adapter, self.env = config, dataset, adapter, env
        self.run_dir = Path(run_dir)
        self.progress = progress and env.is_main
        self.step = 0
        self.generator, self.discriminator = build_models(config)
        self.generator.to(env.device).train()
        self.discriminator.to(env.device).train()
        self.objectives: Objectives = build_objectives(config, env.device)
        cross = config.uses_cross
        self.paths = ReenactmentPaths(self.generator, cross, cross and self.objectives.multi_path)
        self.unused = freeze_unused(self.generator, self.paths)
        self.g_optim = torch.optim.Adam(
            [p for p in self.generator.parameters() if p.requires_grad],
            lr=config.optim.g_lr, betas=config.optim.g_betas,
        )  # fmt: skip
        self.d_optim = torch.optim.Adam(
            self.discriminator.parameters(), lr=config.optim.d_lr, betas=config.optim.d_betas
        )
        use_amp = config.amp and env.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        self.use_amp = use_amp
        self.g_step_module: nn.Module = self.paths
        self.d_step_module: nn.Module = DiscriminatorLogits(self.discriminator)
        if env.distributed:
            ids = [env.device.index] if env.device.type == "cuda" else None
            self.g_step_module = DistributedDataParallel(self.paths, device_ids=ids)
            self.d_step_module = DistributedDataParallel(self.d_step_module, device_ids=ids)

    # ------------------------------------------------------------------ state

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def state_dict(self) -> dict[str, Any]:
        """The sidecar content (model weights go to the safetensors file)."""
        return {
            "step": self.step,
            "g_optim": self.g_optim.state_dict(),
            "d_optim": self.d_optim.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.capture_rng(),
            "train_config": self.config.to_json(),
            "model_config": self.generator.config.to_json(),
        }

    def save(self) -> Path:
        """Write the checkpoint of the current step (rank 0); returns the model file."""
        model_path, state_path = ckpt.checkpoint_paths(self.checkpoint_dir, self.step)
        if self.env.is_main:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            ckpt.save_model(model_path, self.generator, self.discriminator, self.step, self.domain)
            ckpt.save_training_state(state_path, self.state_dict())
            ckpt.prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        barrier(self.env)
        return model_path

    def resume(self, step: int | None = None) -> bool:
        """Load the checkpoint at ``step`` (default: the latest); False when there is none.

        Raises ValueError when the checkpoint's TrainConfig or model differ.
        """
        steps = ckpt.list_checkpoints(self.checkpoint_dir)
        if not steps:
            return False
        step = steps[-1] if step is None else step
        model_path, state_path = ckpt.checkpoint_paths(self.checkpoint_dir, step)
        state = ckpt.load_training_state(state_path)
        ckpt.check_resumable(state["train_config"], self.config)
        saved = read_checkpoint(model_path)
        if saved.config != self.generator.config or saved.discriminator is None:
            raise ValueError(f"{model_path}: model {saved.config.name} does not match this run")
        self.generator.load_state_dict(saved.generator)
        self.discriminator.load_state_dict(saved.discriminator)
        self.g_optim.load_state_dict(state["g_optim"])
        self.d_optim.load_state_dict(state["d_optim"])
        self.scaler.load_state_dict(state["scaler"])
        ckpt.restore_rng(state["rng"])
        self.step = int(state["step"])
        return True

    # ------------------------------------------------------------------- step

    def train_step(self, batch: TrainBatch) -> dict[str, float]:
        """One G update and (with a GAN term) one D update; returns the loss terms."""
        weights = self.config.losses
        batch = batch.to(self.env.device).cross_rows(self.config.cross_share)
        self.discriminator.requires_grad_(False)
        with _autocast(self.env, self.use_amp):
            outputs = self.g_step_module(batch.source, batch.target, batch.other)
            total, terms = self.objectives.generator_loss(outputs, batch, self.discriminator)
        self.g_optim.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.g_optim)
        if weights.needs_gan and weights.gan_d > 0:
            terms["d"] = self._discriminator_step(batch, outputs)
        self.scaler.update()
        return terms

    def _discriminator_step(self, batch: TrainBatch, outputs: Mapping[str, Tensor]) -> float:
        self.discriminator.requires_grad_(True)
        fakes = [outputs["self"].detach()]
        if "cross" in outputs and self.config.losses.gan_cross_g > 0:
            fakes.append(outputs["cross"].detach())
        with _autocast(self.env, self.use_amp):
            real_logits, *fake_logits = self.d_step_module(batch.target, *fakes)
            per_fake = [discriminator_adv_loss(real_logits, f) for f in fake_logits]
            loss = self.config.losses.gan_d * torch.stack(per_fake).mean()
        self.d_optim.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.d_optim)
        return float(loss.detach())

    # ------------------------------------------------------------------- loop

    def _loader(self) -> Iterator[TrainBatch]:
        sampler = StepBatchSampler(
            len(self.dataset),  # type: ignore[arg-type]
            self.config.batch_size,
            self.config.steps,
            seed=self.config.seed,
            rank=self.env.rank,
            world_size=self.env.world_size,
            start_step=self.step,
            stream=self.stream_data,
        )
        workers = self.config.data.num_workers
        loader = DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=workers,
            persistent_workers=False, prefetch_factor=2 if workers else None,
        )  # fmt: skip
        for raw in loader:
            yield self.adapter(raw)

    def train(
        self,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
        stop: Callable[[int], bool] | None = None,
    ) -> TrainResult:
        """Run from the current step to ``config.steps``; checkpoint at the end.

        ``stop(step)``, called after each step's periodic work (logs, samples,
        checkpoints), ends the run early when it returns True (e.g. once a
        validation figure stops improving); the run still checkpoints then.
        """
        start, last = time.monotonic(), {}
        bar = self._progress_bar()
        log_path = self.run_dir / "log.jsonl"
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        for batch in self._loader():
            terms = self.train_step(batch)
            self.step += 1
            last = terms
            if on_step is not None:
                on_step(self.step, terms)
            self._periodic(batch, terms, log_path, start, bar)
            if stop is not None and stop(self.step):
                break
        if bar is not None:
            bar.close()
        path = self.save() if self.config.checkpoint_every >= 0 else None
        return TrainResult(self.step, last, path, time.monotonic() - start)

    def _periodic(
        self, batch: TrainBatch, terms: dict[str, float], log_path: Path, start: float, bar: Any
    ) -> None:
        cfg, step = self.config, self.step
        if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps):
            mean = mean_over_ranks(terms, self.env)
            if self.env.is_main:
                record = {"step": step, "time": round(time.monotonic() - start, 3), **mean}
                with log_path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()}, refresh=False)
        if cfg.sample_every and step % cfg.sample_every == 0 and self.env.is_main:
            self.write_samples(batch, self.run_dir / "samples" / f"step_{step:07d}.png")
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            self.save()

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(
            total=self.config.steps, initial=self.step, unit="step", mininterval=5.0,
            dynamic_ncols=True, desc=f"train {self.config.model}",
        )  # fmt: skip

    @torch.no_grad()
    def write_samples(self, batch: TrainBatch, path: Path, rows: int = 4) -> None:
        """PNG grid: driver | source | output | target (self rows, then cross rows)."""
        was_training = self.generator.training
        self.generator.eval()
        batch = batch.to(self.env.device)
        n = min(rows, batch.size)
        outputs = self.paths(batch.source[:n], batch.target[:n], first_rows(batch.other, n))
        columns = [[batch.target[:n], batch.source[:n], outputs["self"], batch.target[:n]]]
        if "cross" in outputs and batch.other is not None:
            cross_ref = self.objectives.cross_reference(batch, n)
            columns.append([batch.other[:n], batch.source[:n], outputs["cross"], cross_ref])
        save_sample_grid(path, columns)
        self.generator.train(was_training)


__all__ = ["BatchAdapter", "TrainResult", "Trainer", "build_models", "freeze_unused"]
