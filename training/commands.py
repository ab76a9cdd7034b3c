"""``vicocam train``, ``vicocam train-aux`` and ``vicocam eval``.

Multi-process / multi-machine training goes through torchrun, e.g.::

    torchrun --nproc_per_node 2 -m pipeline.cli train --run-dir runs/x ...

(each rank reads its rank and the world size from torchrun's environment).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

log = logging.getLogger(__name__)

BUNDLED_MODEL = (
    Path(__file__).resolve().parent.parent
    / "networks"
    / "pretrained"
    / ("vicoface-64s-world.safetensors")
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_train(subparsers)
    _register_train_aux(subparsers)
    _register_eval(subparsers)


# ---------------------------------------------------------------------- train


def _register_train(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a LIA / ViCoFace model on the synthetic world",
        description="Train on the synthetic talking-head world. --recipe lia is self-"
        "reenactment (spec A.7); --recipe vicoface is mixture training (spec B.3). "
        "Launch with torchrun for several processes / machines.",
    )
    p.add_argument("--run-dir", type=Path, required=True, help="checkpoints, logs, samples go here")
    p.add_argument("--model", default=None, help="model config (default lia-64s / vicoface-64s)")
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
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per rank")
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
    model = args.model or ("vicoface-64s" if vicoface else "lia-64s")
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
                config, dataset, adapter, args.run_dir, env, not args.no_progress, True
            )
            if args.resume and trainer.resume():
                log.warning("resumed %s at step %d", args.run_dir, trainer.step)
        except (ValueError, FileNotFoundError) as exc:
            raise UserError(str(exc)) from None
        result = trainer.train()
    if env.is_main:
        print(f"trained to step {result.final_step} in {result.seconds:.0f} s; {result.checkpoint}")
    return 0


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


# ------------------------------------------------------------------ train-aux


def _register_train_aux(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train-aux",
        help="train the tiny identity / landmark networks of the synthetic world",
        description="Fit a tiny identity embedder (on the identity labels) or landmark"
        " regressor (on the renderer's landmarks) for the L_id / L_lmk losses.",
    )
    p.add_argument("kind", choices=("identity", "landmarks"))
    p.add_argument("--out", type=Path, required=True, help="output .safetensors")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--identities", type=int, default=200, help="training identities (identity)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run_train_aux)


def run_train_aux(args: argparse.Namespace) -> int:
    from training.aux_nets import AuxTrainConfig, save_aux_net
    from training.aux_training import train_world_aux

    if args.out.suffix != ".safetensors":
        raise UserError("--out must end in .safetensors")
    config = AuxTrainConfig(steps=args.steps, seed=args.seed)
    net, final_loss = train_world_aux(
        args.kind, args.size, args.batch_size, args.identities, config
    )
    save_aux_net(net, args.out)
    print(f"{args.kind} network: final training loss {final_loss:.4f}; saved {args.out}")
    return 0


# ----------------------------------------------------------------------- eval


def _register_eval(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a model against ground truth on held-out synthetic identities",
        description="Self- and cross-subject reenactment on held-out identities of the"
        " synthetic world: L1, PSNR, SSIM, attribute error, and trivial baselines.",
    )
    p.add_argument("--checkpoint", type=Path, default=None,
                   help=f"model to score (default: the bundled {BUNDLED_MODEL.name})")  # fmt: skip
    p.add_argument("--split", choices=("val", "test"), default="test")
    p.add_argument("--samples", type=int, default=256, help="pairs per task")
    p.add_argument("--json", type=Path, default=None, help="write the flat figures here")
    p.add_argument("--markdown", type=Path, default=None, help="write the table here")
    p.add_argument("--grid", type=Path, default=None, help="PNG: driver|avatar|output|truth")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from networks.checkpoint import CheckpointError, load_generator
    from training.evaluate import evaluate_generator, save_eval_grid, write_report
    from training.worldset import default_world, world_eval_batches

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.checkpoint or BUNDLED_MODEL
    if not path.is_file():
        raise UserError(f"model not found: {path}; pass --checkpoint PATH")
    try:
        generator = load_generator(path)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    world = default_world()
    self_b, cross_b = world_eval_batches(world, args.split, generator.config.size, args.samples)
    heldout = world.splits.count(args.split)
    report = evaluate_generator(generator, self_b, cross_b, identities_heldout=heldout)
    write_report(report, args.markdown, args.json)
    if args.grid is not None:
        save_eval_grid(args.grid, generator, cross_b[0])
    print(report.markdown(), end="")
    return 0


__all__ = ["BUNDLED_MODEL", "register", "train_config_from_args"]
