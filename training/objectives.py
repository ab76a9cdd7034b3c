"""The generator objective of one step: weighted loss terms per path (spec A.7, B.3).

Self path (x_{s->t} vs x_t): ``l1``, ``vgg``, ``edge``, ``gan_g``.
Cross path (x_{s->o}): ``cross_l1`` / ``cross_vgg`` to the cross reference
(the frozen teacher's pseudo target, or the exact ground truth), ``gan_cross_g``,
``identity`` (embedding of x_{s->o} vs x_s), ``landmarks`` (landmarks of
x_{s->o} vs the cross ground truth's landmarks when the data has them, else
vs the detector's landmarks of the driver x_o).
Multi-path (x_{s->o->st} vs x_t): ``cycle_vgg``, ``cycle_l1``.

Terms whose weight is 0, or whose network is missing (no VGG weights, no
identity / landmark network), are skipped; the trainer logs which once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from networks.checkpoint import load_generator
from networks.generator import Generator
from training.config import TrainConfig
from training.losses import (
    PerceptualLoss,
    detector_landmark_loss,
    edge_loss,
    generator_adv_loss,
    identity_loss,
    l1_loss,
    landmark_loss,
)
from training.paths import TrainBatch
from training.vgg import maybe_load_vgg19

log = logging.getLogger(__name__)


@dataclass
class Objectives:
    """Loss networks + weights; ``generator_loss`` sums the enabled terms.

    Attributes:
        config: the run's TrainConfig (weights, cross_target).
        perceptual: the pyramid VGG loss, or None when no VGG weights were given.
        identity_net / landmark_net: frozen auxiliary networks, or None.
        teacher: frozen stage-1 generator for pseudo targets, or None.
    """

    config: TrainConfig
    perceptual: PerceptualLoss | None = None
    identity_net: nn.Module | None = None
    landmark_net: nn.Module | None = None
    teacher: Generator | None = None

    @property
    def multi_path(self) -> bool:
        """Whether any multi-path term can be computed (L_reg needs VGG or cycle_l1)."""
        w = self.config.losses
        return w.cycle_l1 > 0 or (w.cycle_vgg > 0 and self.perceptual is not None)

    @torch.no_grad()
    def cross_reference(self, batch: TrainBatch, n: int | None = None) -> Tensor:
        """The cross path's target ``[n, 3, S, S]``: pseudo (teacher) or ground truth."""
        rows = batch.size if batch.other is None else int(batch.other.shape[0])
        n = rows if n is None else min(n, rows)
        if self.config.cross_target == "ground_truth":
            if batch.cross_truth is None:
                raise ValueError(
                    "cross_target='ground_truth' but the data has no cross ground truth"
                )
            return batch.cross_truth[:n]
        if self.teacher is None or batch.other is None:
            raise ValueError("pseudo cross targets need a teacher checkpoint and x_o")
        return self.teacher(batch.source[:n], batch.other[:n])

    def generator_loss(
        self, outputs: Mapping[str, Tensor], batch: TrainBatch, discriminator: nn.Module
    ) -> tuple[Tensor, dict[str, float]]:
        """Weighted sum of the enabled terms, and each raw (unweighted) term as a float."""
        terms: dict[str, Tensor] = {}
        self._self_terms(terms, outputs["self"], batch.target, discriminator)
        if "cross" in outputs:
            self._cross_terms(terms, outputs["cross"], batch, discriminator)
        if "multi" in outputs:
            self._multi_terms(terms, outputs["multi"], batch.target)
        weights = self.config.losses
        total = sum(
            (getattr(weights, k) * v for k, v in terms.items()), outputs["self"].new_zeros(())
        )
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["g_total"] = float(total.detach())
        return total, values

    def _self_terms(
        self, terms: dict[str, Tensor], out: Tensor, target: Tensor, disc: nn.Module
    ) -> None:
        w = self.config.losses
        if w.l1 > 0:
            terms["l1"] = l1_loss(out, target)
        if w.vgg > 0 and self.perceptual is not None:
            terms["vgg"] = self.perceptual(out, target)
        if w.edge > 0:
            terms["edge"] = edge_loss(out, target)
        if w.gan_g > 0:
            terms["gan_g"] = generator_adv_loss(disc(out))

    def _cross_terms(
        self, terms: dict[str, Tensor], out: Tensor, batch: TrainBatch, disc: nn.Module
    ) -> None:
        w = self.config.losses
        if self.config.cross_target != "none" and (w.cross_l1 > 0 or w.cross_vgg > 0):
            reference = self.cross_reference(batch)
            if w.cross_l1 > 0:
                terms["cross_l1"] = l1_loss(out, reference)
            if w.cross_vgg > 0 and self.perceptual is not None:
                terms["cross_vgg"] = self.perceptual(out, reference)
        if w.gan_cross_g > 0:
            terms["gan_cross_g"] = generator_adv_loss(disc(out))
        if w.identity > 0 and self.identity_net is not None:
            terms["identity"] = identity_loss(self.identity_net, out, batch.source[: len(out)])
        if w.landmarks > 0 and self.landmark_net is not None:
            terms["landmarks"] = self._landmark_term(out, batch)

    def _landmark_term(self, out: Tensor, batch: TrainBatch) -> Tensor:
        if self.landmark_net is None:
            raise ValueError("the landmark loss needs a landmark network")
        if batch.cross_landmarks is not None:
            return landmark_loss(self.landmark_net(out), batch.cross_landmarks)
        if batch.other is None:
            raise ValueError("the landmark loss needs x_o")
        return detector_landmark_loss(self.landmark_net, out, batch.other)

    def _multi_terms(self, terms: dict[str, Tensor], out: Tensor, target: Tensor) -> None:
        w = self.config.losses
        target = target[: len(out)]  # the multi-path may run on part of the batch
        if w.cycle_vgg > 0 and self.perceptual is not None:
            terms["cycle_vgg"] = self.perceptual(out, target)
        if w.cycle_l1 > 0:
            terms["cycle_l1"] = l1_loss(out, target)


def _load_teacher(path: str, device: torch.device) -> Generator:
    teacher = load_generator(path, device=device)
    teacher.requires_grad_(False)
    teacher.dec.direction.freeze()
    return teacher.eval()


def build_objectives(config: TrainConfig, device: torch.device) -> Objectives:
    """Load the loss networks the config asks for; log every term that is off and why."""
    from training.aux_nets import load_identity_embedder, load_landmark_detector

    w = config.losses
    perceptual = None
    if w.vgg > 0 or w.cross_vgg > 0 or w.cycle_vgg > 0:
        vgg = maybe_load_vgg19(config.vgg_weights)
        if vgg is not None:
            perceptual = PerceptualLoss(vgg, w.vgg_layers).to(device)
    mixture = config.uses_cross
    id_net = lmk_net = teacher = None
    if mixture and w.identity > 0:
        if config.identity_net:
            id_net = load_identity_embedder(config.identity_net).to(device)
        else:
            log.warning("identity loss is OFF: no identity network given (--identity-net)")
    if mixture and w.landmarks > 0:
        if config.landmark_net:
            lmk_net = load_landmark_detector(config.landmark_net).to(device)
        else:
            log.warning("landmark loss is OFF: no landmark network given (--landmark-net)")
    if mixture and config.cross_target == "pseudo" and config.teacher_checkpoint:
        teacher = _load_teacher(config.teacher_checkpoint, device)
    return Objectives(config, perceptual, id_net, lmk_net, teacher)


__all__ = ["Objectives", "build_objectives"]
