"""The reenactment paths of one training step, as one module (what DDP wraps).

DistributedDataParallel synchronises gradients only for computation that
goes through its ``forward``; the mixture step calls the encoder and the
decoder several times, so all of it lives in `ReenactmentPaths.forward`.

Paths (spec B.3; ``a`` transferable, ``b`` preservable coefficients):

* self:   x_{s->t}     = G(z_s + [a_t ; b_t], feats_s)
* cross:  x_{s->o}     = G(z_s + [a_o ; b_s], feats_s)
* multi:  x_{s->o->st} = G(z_{s->o} + [a(x_{s->t}) ; b(x_{s->o})], feats(x_{s->o}))

For LIA (no ``b``) the cross path is plain absolute reenactment by x_o.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from networks.generator import Generator
from networks.motion import MotionMode, compose_alpha


@dataclass(frozen=True)
class TrainBatch:
    """One (local) batch; all images ``[B, 3, S, S]`` in [-1, 1].

    Attributes:
        source: x_s, the avatar frame.
        target: x_t, another frame of the same identity (self-path target).
        other: x_o, a frame of another identity (the cross driver), or None.
        cross_truth: render(identity of x_s, motion of x_o), the exact cross
            ground truth (synthetic world only), or None.
        cross_landmarks: landmarks ``[B, K, 2]`` of ``cross_truth`` in [-1, 1], or None.
    """

    source: Tensor
    target: Tensor
    other: Tensor | None = None
    cross_truth: Tensor | None = None
    cross_landmarks: Tensor | None = None

    def to(self, device: torch.device) -> TrainBatch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return TrainBatch(
            self.source.to(device, non_blocking=True),
            self.target.to(device, non_blocking=True),
            move(self.other),
            move(self.cross_truth),
            move(self.cross_landmarks),
        )

    @property
    def size(self) -> int:
        return int(self.source.shape[0])

    def cross_rows(self, share: float) -> TrainBatch:
        """This batch with the cross-path inputs cut to its first ``ceil(share * B)`` samples."""
        n = max(1, math.ceil(share * self.size))
        if n >= self.size or self.other is None:
            return self
        return TrainBatch(self.source, self.target, first_rows(self.other, n),
                          first_rows(self.cross_truth, n), first_rows(self.cross_landmarks, n))


def first_rows(t: Tensor | None, n: int) -> Tensor | None:
    """The first ``n`` samples of an optional batch tensor."""
    return None if t is None else t[:n]


class ReenactmentPaths(nn.Module):
    """Runs the enabled paths of a step; returns ``{"self", "cross"?, "multi"?}`` images."""

    def __init__(self, generator: Generator, cross: bool, multi: bool) -> None:
        super().__init__()
        if multi and not cross:
            raise ValueError("the multi-path needs the cross path")
        self.generator = generator
        self.cross = cross
        self.multi = multi

    def forward(self, source: Tensor, target: Tensor, other: Tensor | None) -> dict[str, Tensor]:
        """``other`` may hold fewer samples than ``source``: the cross and multi
        paths then run on the first ``len(other)`` sources."""
        g = self.generator
        motion_dim = g.config.motion_dim
        wa_s, feats_s = g.enc.encode_appearance(source)
        coeff_t = g.enc.encode_motion(target)
        out = {"self": g.dec(wa_s, coeff_t, feats_s)}
        if not self.cross:
            return out
        if other is None:
            raise ValueError("the cross path needs x_o (a frame of another identity)")
        n = other.shape[0]  # the cross path may take only the first n samples
        wa_n, feats_n = wa_s[:n], [f[:n] for f in feats_s]  # views: no copy
        coeff_o = g.enc.encode_motion(other)
        alpha = compose_alpha(MotionMode.CROSS, coeff_o, g.enc.fc(wa_n), motion_dim)
        out["cross"] = g.dec(wa_n, alpha, feats_n)
        if self.multi:
            out["multi"] = self._multi(out["self"][:n], out["cross"])
        return out

    def _multi(self, self_out: Tensor, cross_out: Tensor) -> Tensor:
        """x_{s->o->st}: the cross output re-enacted with the self output's motion."""
        g = self.generator
        wa_so, feats_so = g.enc.encode_appearance(cross_out)
        coeff_st = g.enc.encode_motion(self_out)
        alpha = compose_alpha(MotionMode.CROSS, coeff_st, g.enc.fc(wa_so), g.config.motion_dim)
        return g.dec(wa_so, alpha, feats_so)


class DiscriminatorLogits(nn.Module):
    """``forward(real, *fakes)`` -> logits of each, one D call per image set.

    Separate calls keep minibatch-stddev groups within one set (never mixing
    real and fake samples), and one forward serves the whole D backward.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, real: Tensor, *fakes: Tensor) -> list[Tensor]:
        return [self.discriminator(x) for x in (real, *fakes)]


__all__ = ["DiscriminatorLogits", "ReenactmentPaths", "TrainBatch", "first_rows"]
