"""A tiny generator with the op kinds the real export-ready graphs use.

Non-fused modulated conv (``x*s`` -> constant-weight conv -> ``*rsqrt((s^2)@G^T+1e-8)``),
a stride-2 transposed conv followed by a blur (kernel flipped at run time, so
the export leaves ops for the simplifier to fold), a tanh flow added to an
identity grid buffer, ``F.grid_sample`` (bilinear, zeros, align_corners=False)
and a sigmoid mask blend. Batch is dynamic; every other dim is fixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trt_engines.engine import TensorSpec

CHANNELS = 4
LATENT = 6
SIZE = 8  # input feature side; the output side is 2 * SIZE


def _identity_grid(side: int) -> torch.Tensor:
    """[1, side, side, 2] sampling grid in (x, y) order, align_corners=False."""
    coords = (torch.arange(side, dtype=torch.float32) * 2 + 1) / side - 1
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack((x, y), dim=-1).unsqueeze(0)


class ToyGenerator(nn.Module):
    """Inputs ``feat`` [B,C,S,S] and ``latent`` [B,D]; outputs ``image`` [B,3,2S,2S]
    and ``mask`` [B,1,2S,2S]."""

    blur_1d: torch.Tensor
    grid: torch.Tensor

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        c = CHANNELS

        def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
            return torch.randn(*shape, generator=gen) * scale

        self.style = nn.Parameter(rand(c, LATENT, scale=0.3))
        self.weight = nn.Parameter(rand(c, c, 3, 3, scale=0.3))
        self.up_weight = nn.Parameter(rand(c, c, 3, 3, scale=0.3))
        self.flow_weight = nn.Parameter(rand(2, c, 1, 1, scale=0.2))
        self.mask_weight = nn.Parameter(rand(1, c, 1, 1, scale=0.5))
        self.rgb_weight = nn.Parameter(rand(3, c, 1, 1, scale=0.5))
        k1 = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("blur_1d", k1 / k1.sum())
        self.register_buffer("grid", _identity_grid(2 * SIZE))

    def _modconv(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gram = self.weight.square().sum(dim=(2, 3))  # [Cout, Cin]
        demod = torch.rsqrt(s.square() @ gram.t() + 1e-8)  # [B, Cout]
        y = F.conv2d(x * s[:, :, None, None], self.weight, padding=1)
        return y * demod[:, :, None, None]

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.up_weight, stride=2)  # [B,C,2S+1,2S+1]
        kernel = torch.flip(torch.outer(self.blur_1d, self.blur_1d), dims=(0, 1)) * 4
        kernel = kernel[None, None].repeat(CHANNELS, 1, 1, 1)
        return F.conv2d(y, kernel, padding=1, groups=CHANNELS)  # [B,C,2S,2S]

    def forward(self, feat: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = latent @ self.style.t() + 1.0  # [B, C]
        x = F.leaky_relu(self._modconv(feat, s), 0.2)
        x = self._upsample(x)
        flow = torch.tanh(F.conv2d(x, self.flow_weight)).permute(0, 2, 3, 1) * 0.2
        warped = F.grid_sample(
            x, self.grid + flow, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        mask = torch.sigmoid(F.conv2d(x, self.mask_weight))
        rgb = F.conv2d(warped * mask + x * (1 - mask), self.rgb_weight)
        return torch.tanh(rgb), mask


INPUTS = (
    TensorSpec("feat", (None, CHANNELS, SIZE, SIZE), torch.float32),
    TensorSpec("latent", (None, LATENT), torch.float32),
)
OUTPUTS = (
    TensorSpec("image", (None, 3, 2 * SIZE, 2 * SIZE), torch.float32),
    TensorSpec("mask", (None, 1, 2 * SIZE, 2 * SIZE), torch.float32),
)
