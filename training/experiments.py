"""The paper's claim, checked on the synthetic world: does ViCoFace's mixture training
transfer motion across identities while preserving attributes better than LIA's
self-reenactment training?

Protocol (same seed, world data, batch and step budget for both arms):

1. Tiny auxiliary networks for L_id / L_lmk are fitted on the renderer's
   identity labels and landmarks (``training.aux_training``).
2. Arm ``lia``: stage ``self`` (spec A.7 weights) on ``lia-32s``.
3. Arm ``vicoface``: stage ``mixture`` (spec B.3 weights) on
   ``vicoface-32s`` with **pseudo** cross targets from the FROZEN arm-1 model
   (the paper's recipe: the teacher is a trained LIA), L_id and L_lmk through
   the auxiliary networks, and the multi-path term. Without VGG weights the
   multi-path L_reg (VGG in the paper) is an L1 (``cycle_l1 = 1``).
4. Both are scored on held-out test identities (``training.evaluate``):
   cross-subject PSNR / L1 / SSIM against the exact ground truth, and the
   attribute error on hair, torso and face outline.

Run: ``python -m training.experiments --out runs/claim --steps 1500``.
The budget is tiny next to the paper's 660k iterations at 256 px; the
outcome is a measurement at that budget, not a verdict on the method.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from networks.checkpoint import load_generator
from training.aux_nets import AuxTrainConfig, save_aux_net
from training.aux_training import train_world_aux
from training.config import DataConfig, LossWeights, OptimConfig, TrainConfig
from training.distributed import DistEnv
from training.evaluate import evaluate_generator
from training.trainer import Trainer
from training.worldset import default_world, training_dataset, world_batch, world_eval_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimConfig:
    """Budget of the comparison.

    Attributes:
        steps: optimiser steps of EACH arm.
        batch_size: batch of each arm.
        size: image side (the ``*-32s`` models are 32 px).
        seed: model init and data order, shared by the arms.
        aux_steps: training steps of each auxiliary network.
        eval_pairs: self and cross pairs scored per arm.
        gan: keep the adversarial terms (and D). Off by default: in runs of a
            few hundred steps the GAN dominated both arms (D loss near 0, the
            reconstruction L1 rising), which says nothing about the claim.
        adam_beta1: Adam beta1 of both arms. The spec's 0 learns markedly slower
            in short runs (measured on the demo model), so the budget runs use 0.9;
            beta2 and the rates stay the spec's.
    """

    steps: int = 1500
    batch_size: int = 8
    size: int = 32
    seed: int = 0
    aux_steps: int = 400
    eval_pairs: int = 256
    gan: bool = False
    adam_beta1: float = 0.9


def arm_configs(claim: ClaimConfig, out: Path) -> dict[str, TrainConfig]:
    """The two TrainConfigs; the ViCoFace arm's teacher is the LIA arm's final model."""
    spec = OptimConfig()
    optim = OptimConfig(
        g_lr=spec.g_lr, g_betas=(claim.adam_beta1, spec.g_betas[1]),
        d_lr=spec.d_lr, d_betas=(claim.adam_beta1, spec.d_betas[1]),
    )  # fmt: skip
    common: dict[str, Any] = {
        "optim": optim,
        "steps": claim.steps, "batch_size": claim.batch_size, "seed": claim.seed,
        "data": DataConfig(size=claim.size), "log_every": 10, "sample_every": 250,
        "checkpoint_every": 500, "keep_checkpoints": 1,
    }  # fmt: skip
    no_gan: dict[str, Any] = {} if claim.gan else {"gan_g": 0.0, "gan_cross_g": 0.0}
    lia_losses = replace(LossWeights.lia(), **no_gan)
    vcf_losses = replace(LossWeights.vicoface(), cycle_l1=1.0, **no_gan)
    lia = TrainConfig(model="lia-32s", stage="self", losses=lia_losses, **common)
    vicoface = TrainConfig(
        model="vicoface-32s", stage="mixture", cross_target="pseudo", losses=vcf_losses,
        teacher_checkpoint=str(final_checkpoint(out / "lia", claim.steps)),
        identity_net=str(out / "aux" / "identity.safetensors"),
        landmark_net=str(out / "aux" / "landmarks.safetensors"), **common,
    )  # fmt: skip
    return {"lia": lia, "vicoface": vicoface}


def final_checkpoint(run_dir: Path, steps: int) -> Path:
    return run_dir / "checkpoints" / f"step_{steps:07d}.safetensors"


def _train_aux(claim: ClaimConfig, out: Path) -> dict[str, float]:
    losses = {}
    for kind in ("identity", "landmarks"):
        path = out / "aux" / f"{kind}.safetensors"
        if path.is_file():
            continue
        config = AuxTrainConfig(steps=claim.aux_steps, seed=claim.seed)
        net, loss = train_world_aux(kind, claim.size, 32, 200, config)
        save_aux_net(net, path)
        losses[kind] = loss
        log.warning("aux %s network: held-out batch loss %.4f", kind, loss)
    return losses


def _train_arm(config: TrainConfig, run_dir: Path) -> None:
    if final_checkpoint(run_dir, config.steps).is_file():
        return  # finished earlier: the experiment resumes arm by arm
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    dataset = training_dataset(default_world(), config.stage, config.data.size, config.seed)
    trainer = Trainer(config, dataset, world_batch, run_dir, env, progress=True, stream_data=True)
    trainer.resume()
    trainer.train()


def run_claim(claim: ClaimConfig, out: Path) -> dict[str, Any]:
    """Train both arms (resuming whatever exists in ``out``), evaluate, write the report."""
    aux = _train_aux(claim, out)
    configs = arm_configs(claim, out)
    for name, config in configs.items():
        _train_arm(config, out / name)
    world = default_world()
    self_b, cross_b = world_eval_batches(world, "test", claim.size, claim.eval_pairs)
    results: dict[str, Any] = {"claim": asdict(claim), "aux_losses": aux}
    for name, config in configs.items():
        generator = load_generator(final_checkpoint(out / name, config.steps))
        report = evaluate_generator(generator, self_b, cross_b, world.splits.count("test"))
        results[name] = report.flat()
        (out / f"{name}_eval.md").write_text(report.markdown())
    (out / "claim.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=ClaimConfig.steps)
    parser.add_argument("--batch-size", type=int, default=ClaimConfig.batch_size)
    parser.add_argument("--aux-steps", type=int, default=ClaimConfig.aux_steps)
    parser.add_argument("--eval-pairs", type=int, default=ClaimConfig.eval_pairs)
    parser.add_argument("--adam-beta1", type=float, default=ClaimConfig.adam_beta1)
    parser.add_argument("--gan", action="store_true", help="keep the adversarial terms")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    claim = ClaimConfig(
        steps=args.steps, batch_size=args.batch_size, aux_steps=args.aux_steps,
        eval_pairs=args.eval_pairs, adam_beta1=args.adam_beta1, gan=args.gan,
    )  # fmt: skip
    results = run_claim(claim, args.out)
    for arm in ("lia", "vicoface"):
        r = results[arm]
        print(
            f"{arm}: cross PSNR {r['cross_psnr']:.2f} dB, cross L1 {r['cross_l1']:.4f},"
            f" attribute L1 {r['attr_error']:.4f}, self PSNR {r['self_psnr']:.2f} dB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ClaimConfig", "arm_configs", "run_claim"]
