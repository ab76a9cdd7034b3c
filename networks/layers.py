"""Building blocks of the LIA / ViCoFace networks (StyleGAN2-style layers).

Every weight uses the equalised learning rate of StyleGAN: parameters are
stored as unit-variance ``randn`` and scaled by ``1/sqrt(fan_in)`` at run time.
Module and parameter names mirror the released checkpoints so their state
dicts load with ``strict=True`` (see ``networks.checkpoint``). FIR kernels are
persistent buffers for the same reason; identity grids and the frozen QR basis
are non-persistent buffers so they follow ``.to(device)`` without entering the
state dict.

Shapes: images and feature maps are ``[B, C, H, W]``; styles (latent codes)
are ``[B, style_dim]``; motion coefficients are ``[B, M]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8
DEFAULT_BLUR = (1, 3, 3, 1)


# ---------------------------------------------------------------------------
# FIR filtering (upfirdn2d without the custom CUDA op)
# ---------------------------------------------------------------------------


def make_fir_kernel(taps: Sequence[int], gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR kernel ``[k, k]``: outer product of ``taps``, sum ``gain``."""
    k = torch.tensor(list(taps), dtype=torch.float32)
    k2 = k[None, :] * k[:, None]
    return k2 / k2.sum() * gain


def fir_filter(x: Tensor, kernel: Tensor, pad: tuple[int, int], channels: int) -> Tensor:
    """Filter every channel of ``x`` [B,C,H,W] with ``kernel`` [k,k].

    ``pad`` = (before, after) zeros on both spatial axes. Implemented as a
    depthwise conv so it exports as one Conv node with a constant weight;
    ``channels`` (= C) comes in as a Python int so that weight's shape stays
    static under ONNX tracing.
    """
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    # conv2d correlates; a FIR filter convolves, hence the flip.
    weight = kernel.flip([0, 1]).to(x.dtype)[None, None].expand(channels, 1, -1, -1)
    return F.conv2d(x, weight, groups=channels)


def fir_upsample2x(x: Tensor, kernel: Tensor, pad: tuple[int, int], channels: int) -> Tensor:
    """Zero-insertion 2x upsampling followed by ``fir_filter``: [B,C,H,W] -> [B,C,2H,2W]."""
    height, width = x.shape[2], x.shape[3]
    x = x.reshape(-1, channels, height, 1, width, 1)
    x = F.pad(x, (0, 1, 0, 0, 0, 1))
    x = x.reshape(-1, channels, height * 2, width * 2)
    return fir_filter(x, kernel, pad, channels)


class Blur(nn.Module):
    """FIR low-pass of ``channels`` maps with a fixed kernel (buffer ``kernel [k,k]``)."""

    kernel: Tensor

    def __init__(
        self, taps: Sequence[int], pad: tuple[int, int], channels: int, upsample_factor: int = 1
    ) -> None:
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(taps, gain=upsample_factor**2))
        self.pad = pad
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return fir_filter(x, self.kernel, self.pad, self.channels)


class Upsample(nn.Module):
    """2x FIR upsampling (buffer ``kernel [k,k]``) of the 3-channel RGB and flow skips."""

    kernel: Tensor

    def __init__(self, taps: Sequence[int] = DEFAULT_BLUR, channels: int = 3) -> None:
        super().__init__()
        factor = 2
        self.register_buffer("kernel", make_fir_kernel(taps, gain=factor**2))
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return fir_upsample2x(x, self.kernel, self.pad, self.channels)


# ---------------------------------------------------------------------------
# Equalised-learning-rate layers and activations
# ---------------------------------------------------------------------------


def fused_leaky_relu(x: Tensor, bias: Tensor) -> Tensor:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)`` (the gain keeps unit variance)."""
    return F.leaky_relu(x + bias, LEAKY_SLOPE) * LEAKY_GAIN


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU + gain; ``bias [1, C, 1, 1]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    """Leaky ReLU for bias-free activated ConvLayers.

    LIA's version has no sqrt(2) gain (unlike StyleGAN2's); kept as is. The
    LIA/ViCoFace networks never instantiate it, it completes ConvLayer.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, LEAKY_SLOPE)


class EqualConv2d(nn.Module):
    """Conv2d with weight ``[out, in, k, k]`` scaled by ``1/sqrt(in*k*k)`` at run time."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding
        )


class EqualLinear(nn.Module):
    """Linear layer ``[out, in]`` with equalised lr, optional fused leaky ReLU.

    ``bias_init`` = 1 for style modulations (styles start at identity scale).
    Every fc layer of the encoder has ``activate=False``: the motion MLP is
    affine on purpose (spec A.9.3).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class ConvLayer(nn.Sequential):
    """``[Blur] -> EqualConv2d -> [activation]``, indexed ``.0/.1/.2`` like the checkpoints.

    With ``downsample`` the blur runs first and the conv has stride 2. The conv
    carries its own bias only when there is no activation to hold it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[int] = DEFAULT_BLUR,
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, ((p + 1) // 2, p // 2), channels=in_channels))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        conv_bias = bias and not activate
        layers.append(
            EqualConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=conv_bias)
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual 2x downsampling block: ``(conv2(conv1(x)) + skip(x)) / sqrt(2)``."""

    def __init__(
        self, in_channels: int, out_channels: int, blur_kernel: Sequence[int] = DEFAULT_BLUR
    ) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(
            in_channels, out_channels, 3, downsample=True, blur_kernel=blur_kernel
        )
        self.skip = ConvLayer(
            in_channels,
            out_channels,
            1,
            downsample=True,
            blur_kernel=blur_kernel,
            bias=False,
            activate=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


# ---------------------------------------------------------------------------
# Style-modulated layers
# ---------------------------------------------------------------------------


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv; ``weight [1, out, in, k, k]``, ``modulation`` = style -> s.

    Two forms of the same function, same parameters:

    * ``fused=True`` (reference): per-sample weights ``W * s`` (demodulated)
      run as one grouped conv with one group per sample.
    * ``fused=False``: scale the input by ``s``, convolve with the constant
      weight, scale the output by ``d = rsqrt((s^2) @ G^T + 1e-8)`` with
      ``G[o, i] = sum_k W[o, i, k]^2``. Exports with a dynamic batch (the
      fused form bakes the batch into the conv's group count).

    With ``upsample`` the conv is a stride-2 transposed conv followed by a
    FIR blur (``blur.kernel`` buffer).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[int] = DEFAULT_BLUR,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.fused = fused
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            pad = ((p + 1) // 2 + 1, p // 2 + 1)
            self.blur = Blur(blur_kernel, pad, channels=out_channels, upsample_factor=2)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """``x [B, in, H, W]``, ``style [B, style_dim]`` -> ``[B, out, H', W']``."""
        s = self.modulation(style)
        return self._forward_fused(x, s) if self.fused else self._forward_unfused(x, s)

    def _forward_fused(self, x: Tensor, s: Tensor) -> Tensor:
        batch, cin, height, width = x.shape
        cout, k = self.out_channels, self.kernel_size
        weight = self.scale * self.weight * s.view(batch, 1, cin, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + DEMOD_EPS)
            weight = weight * demod.view(batch, cout, 1, 1, 1)
        x = x.reshape(1, batch * cin, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * cin, cout, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=batch)
            return self.blur(out.view(batch, cout, out.shape[2], out.shape[3]))
        weight = weight.reshape(batch * cout, cin, k, k)
        out = F.conv2d(x, weight, padding=self.padding, groups=batch)
        return out.view(batch, cout, out.shape[2], out.shape[3])

    def _forward_unfused(self, x: Tensor, s: Tensor) -> Tensor:
        weight = self.scale * self.weight[0]  # [out, in, k, k]
        x = x * s[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=0))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            gram = weight.pow(2).sum([2, 3])  # [out, in]
            demod = torch.rsqrt(s.pow(2) @ gram.t() + DEMOD_EPS)  # [B, out]
            out = out * demod[:, :, None, None]
        return out


def set_fused_modconv(module: nn.Module, fused: bool) -> None:
    """Switch every ModulatedConv2d inside ``module`` to the fused or non-fused form."""
    for sub in module.modules():
        if isinstance(sub, ModulatedConv2d):
            sub.fused = fused


class NoiseInjection(nn.Module):
    """Per-layer noise weight ``[1]``; LIA never passes noise, so it adds nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        return x if noise is None else x + self.weight * noise


class ConstantInput(nn.Module):
    """Learned ``input [1, C, size, size]``, broadcast over the batch."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch_like: Tensor) -> Tensor:
        """Returns ``[B, C, size, size]`` with B = ``batch_like.shape[0]``."""
        return self.input.expand(batch_like.shape[0], -1, -1, -1)


class StyledConv(nn.Module):
    """ModulatedConv2d -> NoiseInjection (a no-op) -> FusedLeakyReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[int] = DEFAULT_BLUR,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels,
            out_channels,
            kernel_size,
            style_dim,
            upsample=upsample,
            blur_kernel=blur_kernel,
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.activate(self.noise(self.conv(x, style)))


class ToRGB(nn.Module):
    """Unmodulated 1x1 conv to RGB with a leaky ReLU and a second bias, plus the RGB skip.

    The leaky ReLU and double bias are LIA's (spec A.9.4), not StyleGAN2's.
    """

    def __init__(
        self, in_channels: int, upsample: bool = True, blur_kernel: Sequence[int] = DEFAULT_BLUR
    ) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ConvLayer(in_channels, 3, 1)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        """``x [B, C, H, W]``, ``skip [B, 3, H/2, W/2]`` -> ``[B, 3, H, W]``."""
        out = self.conv(x) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


def identity_grid(size: int) -> Tensor:
    """``[1, size, size, 2]`` sampling grid, (x, y) = linspace(-1, 1) on both axes.

    Built in float64 then cast, like LIA's numpy grid. Used with
    ``align_corners=False`` this is LIA's half-pixel convention (spec A.5.4):
    keep it, the pretrained flows expect it.
    """
    axis = torch.linspace(-1.0, 1.0, size, dtype=torch.float64)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs, ys], dim=-1).to(torch.float32)[None]


class ToFlow(nn.Module):
    """Predict a flow and a mask at one scale and warp the encoder features with them.

    ``o = modconv1x1(x) + bias (+ upsample(o_prev))``; offsets ``tanh(o[:, :2])``
    are added to an identity grid; mask ``m = sigmoid(o[:, 2:])``. Returns the
    masked warped features (they feed the RGB skip), the blend
    ``warped + x * (1 - m)`` (the next block's input) and ``o`` (the flow skip).
    """

    grid: Tensor

    def __init__(
        self,
        in_channels: int,
        style_dim: int,
        size: int,
        upsample: bool = True,
        blur_kernel: Sequence[int] = DEFAULT_BLUR,
    ) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.register_buffer("grid", identity_grid(size), persistent=False)

    def forward(
        self, x: Tensor, style: Tensor, feat: Tensor, skip: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``x [B,C,H,W]``, ``feat [B,C,H,W]``, ``skip [B,3,H/2,W/2]`` -> (warped, blend, o)."""
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        offset = torch.tanh(out[:, 0:2]).permute(0, 2, 3, 1)
        mask = torch.sigmoid(out[:, 2:3])
        grid = offset + self.grid.to(offset.dtype)
        sampled = F.grid_sample(
            feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        warped = sampled * mask
        return warped, warped + x * (1.0 - mask), out


class Direction(nn.Module):
    """The learned motion basis: ``weight [style_dim, M]`` orthonormalised by QR.

    ``Q`` = reduced QR of ``weight + 1e-8`` (``[style_dim, M]``, orthonormal
    columns). ``forward(None)`` returns Q; ``forward(alpha [B, M])`` returns
    ``sum_i alpha_i Q[:, i]`` ``[B, style_dim]``.

    Training recomputes Q every call (it depends on the parameter). For
    inference call ``freeze()`` once after loading: Q is cached in the
    non-persistent buffer ``q`` and ``forward`` becomes ``alpha @ Q.T``, which
    exports to ONNX (QR does not). Loading a state dict into a frozen
    Direction recomputes the cache.
    """

    q: Tensor | None

    def __init__(self, style_dim: int, num_directions: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(style_dim, num_directions))
        self.register_buffer("q", None, persistent=False)
        self.register_load_state_dict_post_hook(_refreeze_after_load)

    @property
    def frozen(self) -> bool:
        return self.q is not None

    def compute_basis(self) -> Tensor:
        """Q from the current weight, ``[style_dim, M]``."""
        return torch.linalg.qr(self.weight + 1e-8, mode="reduced").Q

    def freeze(self) -> None:
        """Cache Q for inference (computed in at least fp32, even for a half model)."""
        weight = self.weight.detach()
        with torch.no_grad():
            wide = weight.to(torch.promote_types(weight.dtype, torch.float32))
            q = torch.linalg.qr(wide + 1e-8, mode="reduced").Q
        self.q = q.to(weight.dtype)

    def unfreeze(self) -> None:
        self.q = None

    def forward(self, alpha: Tensor | None = None) -> Tensor:
        if self.q is not None:
            return self.q if alpha is None else alpha @ self.q.t()
        basis = self.compute_basis()
        if alpha is None:
            return basis
        return torch.sum(torch.diag_embed(alpha) @ basis.t(), dim=1)


def _refreeze_after_load(module: nn.Module, _incompatible: object) -> None:
    if isinstance(module, Direction) and module.frozen:
        module.freeze()
