"""Image metrics for evaluation: L1, PSNR, SSIM (Gaussian window), masked L1.

Inputs are ``[B, 3, H, W]`` in [-1, 1]; every metric is computed in [0, 1]
units (``x01 = (x + 1) / 2``), per image, and returned as ``[B]`` so callers
can average over a whole evaluation set.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _to01(x: Tensor) -> Tensor:
    return ((x.float().clamp(-1.0, 1.0)) + 1.0) * 0.5


def _check(output: Tensor, target: Tensor) -> None:
    if output.shape != target.shape or output.ndim != 4:
        raise ValueError(f"need two [B, C, H, W] batches, got {list(output.shape)} and"
                         f" {list(target.shape)}")  # fmt: skip


def l1_per_image(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error in [0, 1] units ``[B]`` (LIA's ``0.5 * |x - y|``)."""
    _check(output, target)
    return (_to01(output) - _to01(target)).abs().mean((1, 2, 3))


def mse_per_image(output: Tensor, target: Tensor) -> Tensor:
    _check(output, target)
    return ((_to01(output) - _to01(target)) ** 2).mean((1, 2, 3))


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error on a [0, 1] signal (inf when 0)."""
    return math.inf if mse <= 0.0 else 10.0 * math.log10(1.0 / mse)


def psnr_per_image(output: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB ``[B]`` (inf where identical)."""
    mse = mse_per_image(output, target)
    return torch.where(mse > 0, 10.0 * torch.log10(1.0 / mse.clamp_min(1e-30)), math.inf)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """Normalised 1-D Gaussian ``[size]`` (SSIM's standard 11 taps, sigma 1.5)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return (window / window.sum()).float()


def _blur(x: Tensor, window: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filter per channel."""
    c, k = x.shape[1], window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_per_image(
    output: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5
) -> Tensor:
    """Mean SSIM ``[B]`` (Wang et al. 2004; K1 0.01, K2 0.03, data range 1).

    Gaussian-weighted local statistics over 'valid' windows, averaged over
    positions and channels. Images smaller than the window use a window of
    their size.
    """
    _check(output, target)
    size = min(window_size, output.shape[-1], output.shape[-2])
    # float64 statistics: E[x^2] - mu^2 in float32 leaves residues near C2.
    window = gaussian_window(size, sigma).to(output.device, torch.float64)
    x, y = _to01(output).double(), _to01(target).double()
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x**2
    var_y = _blur(y * y, window) - mu_y**2
    cov = _blur(x * y, window) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean((1, 2, 3)).float()


def masked_l1_per_image(output: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean |output - target| in [0, 1] units over ``mask [B, 1 or H.., H, W]`` pixels ``[B]``.

    Images whose mask is empty give NaN (the caller skips them).
    """
    _check(output, target)
    m = mask.float()
    if m.ndim == 3:
        m = m.unsqueeze(1)
    diff = (_to01(output) - _to01(target)).abs().mean(1, keepdim=True)  # [B, 1, H, W]
    area = m.sum((1, 2, 3))
    total = (diff * m).sum((1, 2, 3))
    return torch.where(area > 0, total / area.clamp_min(1.0), math.nan)


__all__ = [
    "gaussian_window",
    "l1_per_image",
    "masked_l1_per_image",
    "mse_per_image",
    "psnr_from_mse",
    "psnr_per_image",
    "ssim_per_image",
]
