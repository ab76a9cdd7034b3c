"""The study's budget and the training recipes of its stages, arms and ablations.

Everything here is data: `StudyConfig` is composed by the CLI
(``python -m training.experiments``) and turned into `TrainConfig` objects by
`stage1_config`, `arm_config` and `ablation_config`; nothing trains here.

Changes from the paper, the same in every run (no VGG weights ship with
vicocam and nothing may be downloaded): the perceptual terms are off and
the multi-path term L_reg is an L1; the GAN terms are off (in runs of a few
thousand steps the discriminator won and the reconstruction rose, which says
nothing about the claim); Adam's beta1 is 0.9 (the spec's 0 learns markedly
slower in short runs), beta2 and the rates are the spec's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from training.config import DataConfig, LossWeights, OptimConfig, TrainConfig

ARMS = ("lia", "vicoface")
"""Arm A continues LIA self-reenactment; arm B is ViCoFace's mixture training."""


@dataclass(frozen=True)
class Ablation:
    """One change to arm B's recipe.

    Attributes:
        losses: loss weights changed (`LossWeights` fields).
        cross_target: ``"ground_truth"`` supervises the cross path by the world's
            exact ground truth instead of the teacher: privileged information the
            paper does not have, run to measure what the pseudo targets cost.
        preservable: preservable directions instead of 10 (the 20 transferable
            ones are stage 1's LIA basis either way).
        cross_share: share of each batch that takes the cross path.
    """

    losses: dict[str, float] = field(default_factory=dict)
    cross_target: str | None = None
    preservable: int | None = None
    cross_share: float | None = None


ABLATIONS: dict[str, Ablation] = {
    "no_pseudo": Ablation(losses={"cross_l1": 0.0}),
    "pseudo_weight_5": Ablation(losses={"cross_l1": 5.0}),
    "no_multipath": Ablation(losses={"cycle_l1": 0.0}),
    "no_id_lmk": Ablation(losses={"identity": 0.0, "landmarks": 0.0}),
    "ground_truth_target": Ablation(cross_target="ground_truth"),
    "preservable_5": Ablation(preservable=5),
    "preservable_20": Ablation(preservable=20),
    "cross_share_half": Ablation(cross_share=0.5),
}
"""Arm B with one change each, from the same stage-1 start and seed."""


@dataclass(frozen=True)
class StudyConfig:
    """Budget of the whole study.

    Attributes:
        size: image side; the ``lia-<size><variant>`` / ``vicoface-<size><variant>``
            models are trained.
        variant: ``"s"`` (the study's small models) or ``"t"`` (tiny, for tests).
        batch_size: batch of every run.
        eval_every: stage 1 scores the validation pairs every this many steps.
        min_gain_db: stage 1 stops when its best validation cross PSNR of the last
            ``patience`` evaluations beats the best before them by less than this...
        min_steps: ...but not before this many steps...
        max_steps: ...and at the latest here.
        stage2_steps: steps of every stage-2 run (arms and ablations alike).
        seeds: stage-2 seeds (init of the new heads and data order), each run by both arms.
        ablations: names from `ABLATIONS` run from the same stage-1 start.
        ablation_seed: the seed of the ablation runs (one of ``seeds``, so the
            full arm B of that seed is their reference).
        aux_steps: training steps of the L_id / L_lmk networks.
        judge_steps: training steps of the separate identity judge network.
        val_pairs, test_pairs: cross pairs on the validation / test identities.
        mismatch_share: share of test pairs in the shape-mismatch subset.
        adam_beta1: see the module doc.
        jobs: stage-2 runs trained at once, each with ``threads`` threads.
        threads: intra-op threads of each training process.
    """

    size: int = 32
    variant: str = "s"
    batch_size: int = 8
    eval_every: int = 500
    min_gain_db: float = 0.1
    patience: int = 2
    min_steps: int = 1000
    max_steps: int = 6000
    stage2_steps: int = 1000
    seeds: tuple[int, ...] = (1, 2, 3)
    ablations: tuple[str, ...] = tuple(ABLATIONS)
    ablation_seed: int = 1
    aux_steps: int = 400
    judge_steps: int = 600
    val_pairs: int = 128
    test_pairs: int = 512
    mismatch_share: float = 0.25
    adam_beta1: float = 0.9
    jobs: int = 2
    threads: int = 1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ablations) - set(ABLATIONS))
        if unknown:
            raise ValueError(f"unknown ablations {unknown}; choose from {sorted(ABLATIONS)}")
        if not self.seeds:
            raise ValueError("the study needs at least one stage-2 seed")
        if self.ablations and self.ablation_seed not in self.seeds:
            raise ValueError(f"ablation_seed {self.ablation_seed} must be one of {self.seeds}")
        if not 0 < self.min_steps <= self.max_steps:
            raise ValueError("need 0 < min_steps <= max_steps")
        if self.patience < 1:
            raise ValueError("patience must be >= 1")
        if self.eval_every < 1 or self.stage2_steps < 1 or self.jobs < 1 or self.threads < 1:
            raise ValueError("eval_every, stage2_steps, jobs and threads must be >= 1")

    def model(self, family: str) -> str:
        """The training model config name of ``family`` at this size and variant."""
        return f"{family}-{self.size}{self.variant}"


@dataclass(frozen=True)
class StudyPaths:
    """Where the study keeps its runs under ``root`` (the study resumes from them)."""

    root: Path

    @property
    def aux(self) -> Path:
        return self.root / "aux"

    @property
    def stage1(self) -> Path:
        return self.root / "stage1"

    @property
    def teacher(self) -> Path:
        """The stage-1 model both stage-2 arms start from; arm B's frozen teacher."""
        return self.root / "stage1" / "stage1.safetensors"

    def run(self, name: str, seed: int) -> Path:
        return self.root / "stage2" / f"{name}-seed{seed}"


def _optim(study: StudyConfig) -> OptimConfig:
    spec = OptimConfig()
    return OptimConfig(
        g_lr=spec.g_lr,
        g_betas=(study.adam_beta1, spec.g_betas[1]),
        d_lr=spec.d_lr,
        d_betas=(study.adam_beta1, spec.d_betas[1]),
    )


_NO_GAN: dict[str, Any] = {"gan_g": 0.0, "gan_cross_g": 0.0}


def _common(study: StudyConfig, steps: int, seed: int) -> dict[str, Any]:
    return {
        "optim": _optim(study),
        "steps": steps,
        "batch_size": study.batch_size,
        "seed": seed,
        "data": DataConfig(size=study.size),
        "log_every": 50,
        "sample_every": 0,
        "keep_checkpoints": 2,
    }


def stage1_config(study: StudyConfig) -> TrainConfig:
    """LIA self-reenactment from scratch, up to ``max_steps`` (stopped early at the plateau)."""
    return TrainConfig(
        model=study.model("lia"),
        stage="self",
        losses=replace(LossWeights.lia(), **_NO_GAN),
        checkpoint_every=study.eval_every,
        **_common(study, study.max_steps, 0),
    )


def arm_config(study: StudyConfig, paths: StudyPaths, arm: str, seed: int) -> TrainConfig:
    """Stage 2 of ``arm`` for ``seed``, from the stage-1 model."""
    common = _common(study, study.stage2_steps, seed) | {
        "init_checkpoint": str(paths.teacher),
        "checkpoint_every": 500,
    }
    if arm == "lia":
        losses = replace(LossWeights.lia(), **_NO_GAN)
        return TrainConfig(model=study.model("lia"), stage="self", losses=losses, **common)
    if arm == "vicoface":
        losses = replace(LossWeights.vicoface(), cycle_l1=1.0, **_NO_GAN)
        return TrainConfig(
            model=study.model("vicoface"),
            stage="mixture",
            cross_target="pseudo",
            losses=losses,
            teacher_checkpoint=str(paths.teacher),
            identity_net=str(paths.aux / "identity.safetensors"),
            landmark_net=str(paths.aux / "landmarks.safetensors"),
            **common,
        )
    raise ValueError(f"unknown arm {arm!r}; arms are {ARMS}")


def ablation_config(study: StudyConfig, paths: StudyPaths, name: str) -> TrainConfig:
    """Arm B of ``ablation_seed`` with the one change ``ABLATIONS[name]``."""
    base = arm_config(study, paths, "vicoface", study.ablation_seed)
    change = ABLATIONS[name]
    config = replace(base, losses=replace(base.losses, **change.losses))  # type: ignore[arg-type]
    if change.cross_target == "ground_truth":
        config = replace(config, cross_target="ground_truth", teacher_checkpoint=None)
    if change.preservable is not None:
        config = replace(config, model=f"{base.model}-b{change.preservable}")
    if change.cross_share is not None:
        config = replace(config, cross_share=change.cross_share)
    return config


__all__ = [
    "ABLATIONS",
    "ARMS",
    "Ablation",
    "StudyConfig",
    "StudyPaths",
    "ablation_config",
    "arm_config",
    "stage1_config",
]
