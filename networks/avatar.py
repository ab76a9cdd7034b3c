"""Avatar inference: encode a portrait once, then one driver encode + one render per frame.

``Reenactor`` wraps a loaded ``Generator`` for inference (eval mode, no
autograd, QR basis frozen once). ``prepare_avatar`` caches everything the
source image contributes; ``encode_motion`` / ``compose`` / ``generate`` are
the per-frame steps. The one piece of per-stream state, the relative-mode
reference frame, lives in `networks.reference.RelativeReference`.

Images are ``[B, 3, S, S]`` float in [-1, 1] (the generator's output is not
clamped). Inputs are moved to the model's device and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from networks.config import ModelConfig
from networks.generator import Generator
from networks.graphs import GenerateGraph, MotionGraph
from networks.motion import MotionMode, compose_alpha, default_mode


@dataclass(frozen=True)
class Avatar:
    """What one source portrait contributes to every frame.

    Attributes:
        latent: ``wa_s [1, style_dim]``, the source's latent code.
        feats: encoder features, coarse (8 px) to fine (S px), ``[1, C_k, H_k, W_k]``.
        coeffs: the source's own coefficients ``[a_s ; b_s]`` ``[1, M]``.
        motion_dim: width of ``a`` (the rest of ``coeffs`` is ``b``).
    """

    latent: Tensor
    feats: tuple[Tensor, ...]
    coeffs: Tensor
    motion_dim: int

    @property
    def motion(self) -> Tensor:
        """Transferable coefficients ``a_s [1, motion_dim]``."""
        return self.coeffs[:, : self.motion_dim]

    @property
    def identity(self) -> Tensor:
        """Preservable coefficients ``b_s [1, id_dim]`` (empty for LIA)."""
        return self.coeffs[:, self.motion_dim :]


class Reenactor:
    """Inference front end of a Generator (see module doc); per frame: encode + generate.

    Build it after the weights are loaded: it freezes the QR basis then (a
    later ``load_state_dict`` refreshes the frozen basis by itself).
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator.eval()
        self.motion_graph = MotionGraph(generator)
        self.generate_graph = GenerateGraph(generator)

    @property
    def config(self) -> ModelConfig:
        return self.generator.config

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def _prepare_input(self, image: Tensor, what: str) -> Tensor:
        size = self.config.size
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, size, size):
            raise ValueError(f"{what} must be [B, 3, {size}, {size}], got {list(image.shape)}")
        dtype = next(self.generator.parameters()).dtype
        return image.to(device=self.device, dtype=dtype)

    @torch.no_grad()
    def prepare_avatar(self, image: Tensor) -> Avatar:
        """Encode a source portrait ``[1, 3, S, S]`` once."""
        image = self._prepare_input(image, "avatar image")
        if image.shape[0] != 1:
            raise ValueError(f"prepare one avatar at a time, got a batch of {image.shape[0]}")
        enc = self.generator.enc
        latent, feats = enc.encode_appearance(image)
        return Avatar(latent, tuple(feats), enc.fc(latent), self.config.motion_dim)

    @torch.no_grad()
    def encode_motion(self, driver: Tensor) -> Tensor:
        """Driving frames ``[B, 3, S, S]`` -> coefficients ``[B, motion_dim + id_dim]``."""
        out: Tensor = self.motion_graph(self._prepare_input(driver, "driver"))
        return out

    def compose(
        self,
        avatar: Avatar,
        coeffs: Tensor,
        mode: MotionMode | str | None = None,
        reference: Tensor | None = None,
        strength: float = 1.0,
    ) -> Tensor:
        """Coefficients to render ``[B, M]`` from driver ``coeffs [B, M]``.

        ``mode`` defaults to the family's (cross for ViCoFace, relative for
        LIA); ``reference [1, M]`` is the reference driver frame's coefficients.
        One ``alpha`` for the generate graph, as the live path makes it: LIA's
        relative mode is then composed in coefficient space, within float32
        rounding of LIA's own order (`networks.motion`, "Order of
        operations"), which ``Generator.forward`` reproduces exactly.
        """
        mode = default_mode(self.config.family) if mode is None else mode
        return compose_alpha(
            mode, coeffs, avatar.coeffs, self.config.motion_dim, reference, strength
        )

    @torch.no_grad()
    def generate(self, avatar: Avatar, alpha: Tensor) -> Tensor:
        """Render ``alpha [B, M]`` on the avatar -> image ``[B, 3, S, S]``."""
        if alpha.ndim != 2 or alpha.shape[1] != self.config.coeff_dim:
            raise ValueError(
                f"alpha must be [B, {self.config.coeff_dim}] (motion + id coefficients),"
                f" got {list(alpha.shape)}"
            )
        alpha = alpha.to(device=avatar.latent.device, dtype=avatar.latent.dtype)
        batch = alpha.shape[0]
        latent = avatar.latent.expand(batch, -1)
        feats = [f.expand(batch, -1, -1, -1) for f in avatar.feats]
        out: Tensor = self.generate_graph(latent, alpha, *feats)
        return out

    def reconstruct(self, avatar: Avatar) -> Tensor:
        """The avatar's self-reconstruction (its own coefficients) ``[1, 3, S, S]``."""
        return self.generate(avatar, avatar.coeffs)
