"""``vicocam train``: LIA / ViCoFace training on the synthetic world or real clips.

Multi-process / multi-machine training goes through torchrun, e.g.::

    torchrun --nproc_per_node 2 -m pipeline.app train --run-dir runs/x ...

(each rank reads its rank and the world size from torchrun's environment).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.app.model_options import add_config_option
from pipeline.app.options import positive_int
from pipeline.errors import UserError

if TYPE_CHECKING:
    from networks.checkpoint import TrainingDomain

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a LIA / ViCoFace model on the synthetic world",
        description="Train on the synthetic talking-head world. --recipe lia is self-"
        "reenactment (spec A.7); --recipe vicoface is mixture training (spec B.3). "
        "Launch with torchrun for several processes / machines.",
    )
    p.add_argument("--run-dir", type=Path, required=True, help="checkpoints, logs, samples go here")
    add_config_option(p, "model configuration (default lia-64s / vicoface-64s)")
    p.add_argument("--recipe", choices=("lia", "vicoface"), default="vicoface")
    p.add_argument(
        "--cross-target", choices=("pseudo", "ground_truth", "none"), default="pseudo",
        help="cross-path L1 target: a frozen stage-1 model's output (paper) or the exact"
        " synthetic ground truth (vicocam option)",
    )  # fmt: skip
    _add_recipe_arguments(p)
    _add_run_arguments(p)
    p.set_defaults(handler=run_train)


def _add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """What is trained and how (a resume must keep all of it but --steps)."""
    p.add_argument("--teacher", default=None, help="frozen stage-1 checkpoint for pseudo targets")
    p.add_argument("--init", default=None, help="start from this checkpoint (LIA vox.pt works)")
    p.add_argument(
        "--data", type=Path, default=None,
        help="real clips in the FOMM/LIA layout (ROOT/train/CLIP...) instead of the synthetic "
        "world; needs --cross-target pseudo (with --teacher) or none for --recipe vicoface",
    )
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=8, help="global batch over all ranks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--loss", action="append", default=[], metavar="NAME=WEIGHT",
        help="override a loss weight (training.config.LossWeights), repeatable",
    )  # fmt: skip
    p.add_argument(
        "--adam-beta1", type=float, default=None,
        help="Adam beta1 for G and D (spec: 0; beta2 and the rates stay the spec's)",
    )  # fmt: skip
    p.add_argument(
        "--lr-scale", type=float, default=1.0,
        help="multiply the spec's G and D learning rates (e.g. a final low-rate phase)",
    )  # fmt: skip
    p.add_argument("--vgg-weights", default=None, help="torchvision VGG19 ImageNet state dict")
    p.add_argument(
        "--identity-net", default=None, help="identity embedder (.safetensors / TorchScript)"
    )
    p.add_argument(
        "--landmark-net", default=None, help="landmark detector (.safetensors / TorchScript)"
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """How the run executes and reports (free to change on resume)."""
    p.add_argument("--workers", type=int, default=1, help="data worker processes per rank")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads per rank")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--sample-every", type=int, default=250)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--keep", type=int, default=0, help="periodic checkpoints kept (0 = all)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--no-progress", action="store_true")


def _loss_overrides(base: Any, items: list[str]) -> Any:
    names = {f.name for f in fields(base)}
    changes: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in names or name == "vgg_layers":
            raise UserError(f"--loss {item!r}: use NAME=WEIGHT with NAME one of {sorted(names)}")
        try:
            changes[name] = float(value)
        except ValueError:
            raise UserError(f"--loss {item!r}: {value!r} is not a number") from None
    return replace(base, **changes)


def train_config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig the arguments describe (UserError on bad combinations)."""
    from training.config import DataConfig, LossWeights, OptimConfig, TrainConfig
    from training.models import resolve_model_config

    vicoface = args.recipe == "vicoface"
    model = args.config or ("vicoface-64s" if vicoface else "lia-64s")
    try:
        size = resolve_model_config(model).size
        losses = LossWeights.vicoface() if vicoface else LossWeights.lia()
        spec = OptimConfig()
        optim = replace(spec, g_lr=spec.g_lr * args.lr_scale, d_lr=spec.d_lr * args.lr_scale)
        if args.adam_beta1 is not None:
            optim = replace(
                optim,
                g_betas=(args.adam_beta1, optim.g_betas[1]),
                d_betas=(args.adam_beta1, optim.d_betas[1]),
            )
        return TrainConfig(
            model=model, stage="mixture" if vicoface else "self", cross_target=args.cross_target,
            steps=args.steps, batch_size=args.batch_size, seed=args.seed,
            losses=_loss_overrides(losses, args.loss), optim=optim,
            data=DataConfig(size=size, num_workers=args.workers), vgg_weights=args.vgg_weights,
            teacher_checkpoint=args.teacher, init_checkpoint=args.init,
            identity_net=args.identity_net, landmark_net=args.landmark_net, amp=not args.no_amp,
            log_every=args.log_every, sample_every=args.sample_every,
            checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep,
        )  # fmt: skip
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run_train(args: argparse.Namespace) -> int:
    import torch

    from training.distributed import distributed_session
    from training.trainer import Trainer
    config = train_config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset, adapter = _training_data(args.data, config)
    with distributed_session(args.device) as env:
        try:
            trainer = Trainer(
                config, dataset, adapter, args.run_dir, env, not args.no_progress, True,
                domain=_data_domain(args.data),
            )
            if args.resume and trainer.resume():
                log.warning("resumed %s at step %d", args.run_dir, trainer.step)
        except (ValueError, FileNotFoundError) as exc:
            raise UserError(str(exc)) from None
        result = trainer.train()
    if env.is_main:
        print(f"trained to step {result.final_step} in {result.seconds:.0f} s; {result.checkpoint}")
    return 0


def _data_domain(root: Path | None) -> TrainingDomain:
    """What the checkpoints will say they learned: real clips under ``root``, else the
    synthetic world (so a run knows when its model is asked to animate real faces)."""
    from networks.checkpoint import TrainingDomain

    return TrainingDomain.SYNTHETIC_WORLD if root is None else TrainingDomain.REAL_FACES


def _training_data(root: Path | None, config: Any) -> tuple[Any, Any]:
    """``(dataset, batch adapter)``: real clips under ``root``, else the synthetic world."""
    if root is None:
        from training.worldset import default_world, training_dataset, world_batch

        world = default_world()
        return training_dataset(world, config.stage, config.data.size, config.data.world_seed), (
            world_batch
        )
    from training.realset import real_batch, real_training_dataset

    if config.stage == "mixture" and config.cross_target == "ground_truth":
        raise UserError(
            "real clips have no cross-subject ground truth: use --cross-target pseudo "
            "--teacher STAGE1.safetensors (the paper's recipe) or --cross-target none"
        )
    try:
        dataset = real_training_dataset(root, config.stage, config.data.size, config.seed)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    return dataset, real_batch
