"""StyleGAN2 ResNet discriminator, as used (byte-identical) by LIA and ViCoFace.

ConvLayer 1x1 from RGB, ResBlocks down to 4x4, a minibatch-stddev channel,
``final_conv`` 3x3 and ``final_linear`` (EqualLinear with fused leaky ReLU,
then EqualLinear to one logit). With ``DiscriminatorConfig(256, LIA channels)``
the state dict matches ``checkpoint['dis']`` of the LIA release files.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from networks.config import DiscriminatorConfig
from networks.layers import ConvLayer, EqualLinear, ResBlock


def minibatch_stddev(x: Tensor, group_size: int) -> Tensor:
    """Append the mean per-group feature stddev as one channel: [B,C,H,W] -> [B,C+1,H,W].

    Samples ``i`` and ``i + B/group`` share a group (StyleGAN2's strided view).
    """
    batch, channels, height, width = x.shape
    group = min(batch, group_size)
    if batch % group:
        raise ValueError(f"batch {batch} must be a multiple of the stddev group {group}")
    grouped = x.view(group, -1, 1, channels, height, width)
    std = torch.sqrt(grouped.var(0, unbiased=False) + 1e-8)  # [B/g, 1, C, H, W]
    std = std.mean([2, 3, 4], keepdim=True).squeeze(2)  # [B/g, 1, 1, 1]
    std = std.repeat(group, 1, height, width)
    return torch.cat([x, std], dim=1)


class Discriminator(nn.Module):
    """Real/fake logit ``[B, 1]`` for images ``[B, 3, S, S]``."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        blur = config.blur_kernel
        layers: list[nn.Module] = [ConvLayer(3, config.channels_at(config.size), 1)]
        resolution = config.size
        while resolution > 4:
            in_ch, out_ch = config.channels_at(resolution), config.channels_at(resolution // 2)
            layers.append(ResBlock(in_ch, out_ch, blur))
            resolution //= 2
        self.convs = nn.Sequential(*layers)
        c4 = config.channels_at(4)
        self.final_conv = ConvLayer(c4 + 1, c4, 3)
        self.final_linear = nn.Sequential(
            EqualLinear(c4 * 4 * 4, c4, activate=True), EqualLinear(c4, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        out = minibatch_stddev(self.convs(x), self.config.stddev_group)
        out = self.final_conv(out)
        logits: Tensor = self.final_linear(out.flatten(1))
        return logits
