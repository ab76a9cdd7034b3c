"""``vicocam train-aux``: the tiny identity / landmark networks behind L_id and L_lmk."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import UserError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
