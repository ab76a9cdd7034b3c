"""``vicocam eval``: score a model against ground truth on held-out synthetic people."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.app.options import add_json_option, command_line, positive_int
from pipeline.errors import UserError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a model against ground truth on held-out synthetic identities",
        description="Self- and cross-subject reenactment on held-out identities of the"
        " synthetic world: L1, PSNR, SSIM, attribute error, and trivial baselines.",
    )
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model to score (default: the bundled demo model)")
    p.add_argument("--split", choices=("val", "test"), default="test")
    p.add_argument("--samples", type=int, default=256, help="pairs per task")
    add_json_option(p, "the flat figures")
    p.add_argument("--markdown", type=Path, default=None, help="write the table here")
    p.add_argument("--grid", type=Path, default=None, help="PNG: driver|avatar|output|truth")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from networks.checkpoint import CheckpointError, load_generator
    from training.evaluate import evaluate_generator, save_eval_grid, write_report
    from training.worldset import default_world, world_eval_batches
    from trt_engines.bundle import bundled_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.checkpoint or bundled_checkpoint()
    if path is None or not path.is_file():
        raise UserError(f"model not found: {path or 'no bundled model'}; pass --checkpoint PATH")
    try:
        generator = load_generator(path)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    world = default_world()
    self_b, cross_b = world_eval_batches(world, args.split, generator.config.size, args.samples)
    heldout = world.splits.count(args.split)
    report = evaluate_generator(generator, self_b, cross_b, identities_heldout=heldout)
    write_report(report, args.markdown, None)
    _write_json(report.flat(), args.json)
    if args.grid is not None:
        save_eval_grid(args.grid, generator, cross_b[0])
    print(report.markdown(), end="")
    return 0


def _write_json(figures: dict[str, float | int], path: Path | None) -> None:
    """The flat figures with the command, machine, versions and load, as benchmarks write them."""
    from benchmarks.common import write_result

    if path is not None:
        write_result(figures, path, name="eval", command=command_line("vicocam eval"))
