"""Typed, frozen configuration of a training run (composed only by the CLI / experiments).

Two recipes share one trainer:

* ``stage="self"``: LIA self-reenactment (spec A.7): x_s + motion of x_t -> x_t,
  loss ``l1 * L1 + vgg * VGG + gan_g * GAN``; `LossWeights.lia()`.
* ``stage="mixture"``: ViCoFace (spec B.3): the self path plus the
  cross-subject path x_{s->o} = G(z_s + [a_o ; b_s]) and the multi-path
  x_{s->o->st}; `LossWeights.vicoface()` holds the B.3 table.

``cross_target`` says what supervises the cross path's L1 (``cross_l1``):

* ``"pseudo"`` (the paper's recipe): a FROZEN stage-1 model's output for
  (x_s, x_o), given by ``teacher_checkpoint``;
* ``"ground_truth"``: the exact render(identity of x_s, motion of x_o). Only
  the synthetic world has it: an option of vicocam, not of the paper.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Stage = Literal["self", "mixture"]
CrossTarget = Literal["pseudo", "ground_truth", "none"]

LIA_LR = 0.002
LIA_G_LR = LIA_LR * 4 / 5
LIA_G_BETAS = (0.0, 0.99 ** (4 / 5))
LIA_D_LR = LIA_LR * 16 / 17
LIA_D_BETAS = (0.0, 0.99 ** (16 / 17))


@dataclass(frozen=True)
class LossWeights:
    """Weight of each loss term; 0 switches a term (and any path only it needs) off.

    Attributes:
        l1: L1 of the self path against x_t (L_rec).
        vgg: the pyramid VGG loss of the self path (needs VGG weights).
        vgg_layers: relu1_1..relu5_1 weights inside the VGG loss.
        edge: Laplacian edge L1 of the self path (ViCoFace's EdgeLoss).
        gan_g: non-saturating G loss on the self output.
        gan_cross_g: non-saturating G loss on the cross output (L_adv).
        cross_l1: L1 of the cross output to its target (L_pseu, or ground truth).
        cross_vgg: VGG of the cross output to its target (0 in the paper).
        identity: L_id, 1 - cos of identity embeddings (cross output vs x_s).
        landmarks: L_lmk, weighted landmark L1 (cross output vs its target landmarks).
        cycle_vgg: L_reg, VGG of x_{s->o->st} vs x_t.
        cycle_l1: L1 of x_{s->o->st} vs x_t; 0 in the paper, useful when VGG is off.
        gan_d: scale of the discriminator loss.
    """

    l1: float = 1.0
    vgg: float = 1.0
    vgg_layers: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    edge: float = 0.0
    gan_g: float = 1.0
    gan_cross_g: float = 0.0
    cross_l1: float = 0.0
    cross_vgg: float = 0.0
    identity: float = 0.0
    landmarks: float = 0.0
    cycle_vgg: float = 0.0
    cycle_l1: float = 0.0
    gan_d: float = 1.0

    @classmethod
    def lia(cls) -> LossWeights:
        """Spec A.7: VGG + L1 + GAN, each weight 1, VGG layers all 10."""
        return cls()

    @classmethod
    def vicoface(cls) -> LossWeights:
        """Spec B.3 (``utils/config.py``): L1 15, VGG (15,10,10,10,10), edge 5, GANs 0.5,
        pseudo L1 20, id 6, lmk 3, multi-path VGG 1, D 1. (``pose`` 50 is DECA-specific
        and not implemented.)"""
        return cls(
            l1=15.0, vgg=1.0, vgg_layers=(15.0, 10.0, 10.0, 10.0, 10.0), edge=5.0,
            gan_g=0.5, gan_cross_g=0.5, cross_l1=20.0, identity=6.0, landmarks=3.0,
            cycle_vgg=1.0, cycle_l1=0.0, gan_d=1.0,
        )  # fmt: skip

    @property
    def needs_cross(self) -> bool:
        return any(
            w > 0 for w in (self.gan_cross_g, self.cross_l1, self.cross_vgg, self.identity,
                            self.landmarks, self.cycle_vgg, self.cycle_l1)
        )  # fmt: skip

    @property
    def needs_cycle(self) -> bool:
        return self.cycle_vgg > 0 or self.cycle_l1 > 0

    @property
    def needs_gan(self) -> bool:
        return self.gan_g > 0 or self.gan_cross_g > 0


@dataclass(frozen=True)
class OptimConfig:
    """Adam for G and D with LIA's lazy-regularisation-scaled rates (spec A.7)."""

    g_lr: float = LIA_G_LR
    g_betas: tuple[float, float] = LIA_G_BETAS
    d_lr: float = LIA_D_LR
    d_betas: tuple[float, float] = LIA_D_BETAS


@dataclass(frozen=True)
class DataConfig:
    """What the synthetic world feeds the trainer.

    Attributes:
        size: image side in pixels (must equal the model's size).
        world_seed: seed of the world (identity split, clips).
        num_workers: DataLoader worker processes per rank (0 = render in-process).
    """

    size: int = 64
    world_seed: int = 0
    num_workers: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        model: networks config name (``"vicoface-64s"``...) used to build G and D.
        stage: ``"self"`` (LIA) or ``"mixture"`` (ViCoFace), see module doc.
        cross_target: supervision of the cross path, see module doc; ``"none"``
            uses no cross L1 (only id/lmk/GAN/multi-path).
        steps: total optimiser steps.
        batch_size: GLOBAL batch (split evenly over the DDP ranks).
        seed: seeds model init and the data order.
        losses, optim, data: see their classes.
        vgg_weights: torchvision-format VGG19 ImageNet weights; None = VGG terms off.
        teacher_checkpoint: frozen stage-1 model for ``cross_target="pseudo"``.
        init_checkpoint: start G (and D) from this model checkpoint; a LIA model
            into a ViCoFace config goes through ``training.finetune``.
        identity_net / landmark_net: paths of the id / landmark networks
            (``training.aux_nets``); None switches those terms off.
        cross_share: share of each batch that also takes the cross path (and
            the multi-path): its first ``ceil(cross_share * B)`` samples. 1 = all.
        amp: autocast (fp16 + GradScaler) on CUDA; ignored on CPU.
        log_every / sample_every / checkpoint_every: intervals in steps (0 = never).
        keep_checkpoints: how many periodic checkpoints to keep (the newest).
    """

    model: str = "lia-64s"
    stage: Stage = "self"
    cross_target: CrossTarget = "pseudo"
    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    losses: LossWeights = field(default_factory=LossWeights.lia)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    vgg_weights: str | None = None
    teacher_checkpoint: str | None = None
    init_checkpoint: str | None = None
    identity_net: str | None = None
    landmark_net: str | None = None
    cross_share: float = 1.0
    amp: bool = True
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must name a model config")
        if self.stage not in ("self", "mixture"):
            raise ValueError(f"stage must be 'self' or 'mixture', got {self.stage!r}")
        if self.cross_target not in ("pseudo", "ground_truth", "none"):
            raise ValueError(f"unknown cross_target {self.cross_target!r}")
        if (
            self.stage == "mixture"
            and self.cross_target == "pseudo"
            and (self.losses.cross_l1 > 0 or self.losses.cross_vgg > 0)
            and not self.teacher_checkpoint
        ):
            raise ValueError(
                "cross_target='pseudo' needs teacher_checkpoint (a frozen stage-1 model);"
                " train one with stage='self' first, or use cross_target='ground_truth'"
            )
        if not 0.0 < self.cross_share <= 1.0:
            raise ValueError(f"cross_share must be in (0, 1], got {self.cross_share}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")

    @classmethod
    def vicoface(cls, **changes: Any) -> TrainConfig:
        """The ViCoFace mixture recipe (B.3 weights) on ``vicoface-64s``; fields overridable."""
        base: dict[str, Any] = {"model": "vicoface-64s", "stage": "mixture",
                                "losses": LossWeights.vicoface()}  # fmt: skip
        return cls(**(base | changes))

    @property
    def uses_cross(self) -> bool:
        return self.stage == "mixture" and self.losses.needs_cross

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return _from_dict(cls, json.loads(text))


def _from_dict(cls: Any, data: dict[str, Any]) -> Any:
    kinds = {"losses": LossWeights, "optim": OptimConfig, "data": DataConfig}
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in kinds and isinstance(value, dict):
            value = _from_dict(kinds[key], value)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


__all__ = [
    "CrossTarget",
    "DataConfig",
    "LossWeights",
    "OptimConfig",
    "Stage",
    "TrainConfig",
]
