"""Training losses of LIA (spec A.7) and ViCoFace (spec B.3).

Images are ``[B, 3, H, W]`` in [-1, 1]. Every loss returns a scalar tensor
that is the mean over the batch, so data-parallel ranks with equal shards
average to the single-process value.

* ``PerceptualLoss``: VGG19 relu1_1..relu5_1 L1 on an anti-aliased image
  pyramid {1, 1/2, 1/4, 1/8} (FOMM's ``AntiAliasInterpolation2d`` idea).
* ``generator_adv_loss`` / ``discriminator_adv_loss``: non-saturating GAN
  with softplus; no R1 (LIA has none).
* ``edge_loss``: L1 between 3x3 Laplacian high-pass responses (ViCoFace).
* ``identity_loss`` / ``landmark_loss``: through pluggable networks that
  follow the `IdentityEmbedder` / `LandmarkDetector` protocols
  (``training.aux_nets`` has tiny ones for the synthetic world and loaders
  for user-supplied TorchScript models for real faces).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.vgg import VGG19Features

LIA_VGG_WEIGHTS = (10.0, 10.0, 10.0, 10.0, 10.0)
VICOFACE_VGG_WEIGHTS = (15.0, 10.0, 10.0, 10.0, 10.0)
PYRAMID_SCALES = (1.0, 0.5, 0.25, 0.125)


@runtime_checkable
class IdentityEmbedder(Protocol):
    """A face-recognition embedder: ``[B, 3, H, W]`` in [-1, 1] -> ``[B, D]``.

    Must be differentiable w.r.t. its input; the loss compares directions
    (cosine), so the embedding need not be normalised.
    """

    def __call__(self, images: Tensor) -> Tensor: ...


@runtime_checkable
class LandmarkDetector(Protocol):
    """A landmark detector: ``[B, 3, H, W]`` in [-1, 1] -> ``[B, K, 2]`` (x, y) in [-1, 1].

    Must be differentiable w.r.t. its input.
    """

    def __call__(self, images: Tensor) -> Tensor: ...


def _gaussian_1d(sigma: float) -> Tensor:
    """FOMM's kernel: size ``2 * round(4 sigma) + 1``, normalised to sum 1."""
    size = 2 * round(sigma * 4) + 1
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (sigma = (1/scale - 1) / 2) then keep every (1/scale)-th pixel.

    ``[B, C, H, W]`` -> ``[B, C, H*scale, W*scale]``; scale 1 is the identity.
    The Gaussian is applied separably with reflect-free zero padding, the
    same support as FOMM's ``AntiAliasInterpolation2d``.
    """

    kernel: Tensor

    def __init__(self, scale: float) -> None:
        super().__init__()
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"pyramid scale must be in (0, 1], got {scale}")
        self.scale = scale
        self.stride = round(1.0 / scale)
        sigma = max((1.0 / scale - 1.0) / 2.0, 1e-3)
        self.register_buffer("kernel", _gaussian_1d(sigma), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return x
        channels, size = x.shape[1], self.kernel.numel()
        pad_lo = size // 2
        pad_hi = pad_lo - 1 if size % 2 == 0 else pad_lo
        x = F.pad(x, (pad_lo, pad_hi, pad_lo, pad_hi))
        k = self.kernel.to(x.dtype)
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(channels, 1, 1, size), groups=channels)
        x = F.conv2d(x, k.view(1, 1, -1, 1).expand(channels, 1, size, 1), groups=channels)
        return x[:, :, :: self.stride, :: self.stride]


class ImagePyramid(nn.Module):
    """``x`` -> ``[x at each scale]`` (anti-aliased), scales as given."""

    def __init__(self, scales: Sequence[float] = PYRAMID_SCALES) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.levels = nn.ModuleList(AntiAliasDownsample(s) for s in self.scales)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [level(x) for level in self.levels]


class PerceptualLoss(nn.Module):
    """Pyramid VGG loss: ``sum_scales sum_layers w_l * mean|phi_l(x) - phi_l(y)|``.

    ``forward(output, target)``: both ``[B, 3, H, W]``; the target side is not
    differentiated. Levels too small for the deepest VGG taps use the taps
    they have (an 8 px level stops at relu4_1).
    """

    def __init__(
        self,
        vgg: VGG19Features,
        layer_weights: Sequence[float] = LIA_VGG_WEIGHTS,
        scales: Sequence[float] = PYRAMID_SCALES,
    ) -> None:
        super().__init__()
        if len(layer_weights) != 5:
            raise ValueError(f"need 5 VGG layer weights (relu1_1..relu5_1), got {layer_weights}")
        self.vgg = vgg
        self.layer_weights = tuple(layer_weights)
        self.pyramid = ImagePyramid(scales)

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        total = output.new_zeros(())
        for out_level, tgt_level in zip(self.pyramid(output), self.pyramid(target), strict=True):
            out_feats = self.vgg(out_level)
            with torch.no_grad():
                tgt_feats = self.vgg(tgt_level)
            for weight, fo, ft in zip(self.layer_weights, out_feats, tgt_feats, strict=False):
                total = total + weight * (fo - ft).abs().mean()
        return total


def generator_adv_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating G loss ``mean softplus(-D(fake))``; logits ``[B, 1]``."""
    return F.softplus(-fake_logits).mean()


def discriminator_adv_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D loss ``mean softplus(-D(real)) + mean softplus(D(fake))``."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def l1_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error in [-1, 1] units (LIA's L1 term)."""
    return (output - target).abs().mean()


_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian(x: Tensor) -> Tensor:
    """Per-channel 3x3 Laplacian high-pass ``[B, C, H, W]`` -> same shape (replicate pad)."""
    channels = x.shape[1]
    kernel = torch.tensor(_LAPLACIAN, dtype=x.dtype, device=x.device)
    kernel = kernel.view(1, 1, 3, 3).expand(channels, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)


def edge_loss(output: Tensor, target: Tensor, statistical: bool = False) -> Tensor:
    """ViCoFace's EdgeLoss: L1 between Laplacian responses.

    ``statistical=True`` compares the mean absolute response per image and
    channel instead (a sharpness statistic, no spatial alignment needed).
    """
    eo, et = laplacian(output), laplacian(target)
    if statistical:
        return (eo.abs().mean((2, 3)) - et.abs().mean((2, 3))).abs().mean()
    return (eo - et).abs().mean()


def identity_loss(embedder: IdentityEmbedder, output: Tensor, reference: Tensor) -> Tensor:
    """``mean(1 - cos(E(output), E(reference)))``; the reference side is constant."""
    emb_out = embedder(output)
    with torch.no_grad():
        emb_ref = embedder(reference)
    return (1.0 - F.cosine_similarity(emb_out, emb_ref, dim=1)).mean()


def face68_landmark_weights() -> Tensor:
    """ViCoFace's ``weighted_landmark_loss`` weights for 68 points ``[68]``.

    0.5 everywhere, jaw contour (idx 1..15) 2, chin (idx 7..9) 1.5.
    """
    weights = torch.full((68,), 0.5)
    weights[1:16] = 2.0
    weights[7:10] = 1.5
    return weights


def landmark_loss(predicted: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Weighted L1 of landmarks ``[B, K, 2]``, normalised by the weight sum ``[K]``."""
    if predicted.shape != target.shape:
        raise ValueError(f"landmarks {list(predicted.shape)} vs {list(target.shape)}")
    per_point = (predicted - target).abs().sum(-1)  # [B, K]
    if weights is None:
        return per_point.mean() / 2.0
    w = weights.to(per_point)
    if w.shape != per_point.shape[-1:]:
        raise ValueError(f"{w.numel()} landmark weights for {per_point.shape[-1]} landmarks")
    return (per_point * w).sum(-1).mean() / (2.0 * w.sum())


def detector_landmark_loss(
    detector: LandmarkDetector, output: Tensor, reference: Tensor, weights: Tensor | None = None
) -> Tensor:
    """Landmarks of ``output`` vs those the detector finds on ``reference`` (constant)."""
    with torch.no_grad():
        target = detector(reference)
    return landmark_loss(detector(output), target, weights)


__all__ = [
    "LIA_VGG_WEIGHTS",
    "PYRAMID_SCALES",
    "VICOFACE_VGG_WEIGHTS",
    "AntiAliasDownsample",
    "IdentityEmbedder",
    "ImagePyramid",
    "LandmarkDetector",
    "PerceptualLoss",
    "detector_landmark_loss",
    "discriminator_adv_loss",
    "edge_loss",
    "face68_landmark_weights",
    "generator_adv_loss",
    "identity_loss",
    "l1_loss",
    "landmark_loss",
    "laplacian",
]
