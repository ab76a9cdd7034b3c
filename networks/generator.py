"""The LIA / ViCoFace generator: an encoder and a flow-warping StyleGAN2 decoder.

Read top to bottom:

1. ``EncoderApp`` (``enc.net_app``) maps an image ``[B, 3, S, S]`` to a
   latent code ``wa [B, style_dim]`` and the multi-scale features the decoder
   warps (coarse 8 px to fine S px).
2. ``Encoder`` (``enc``) adds ``fc``, an affine map (no nonlinearity) from
   ``wa`` to the coefficients ``alpha = [a ; b]`` ``[B, M]``.
3. ``Synthesis`` (``dec``) renders ``z = wa_s + D(alpha)`` (``D`` =
   ``direction``, the QR-orthonormalised basis) with StyleGAN2 blocks; at each
   scale ``ToFlow`` predicts a flow and a mask that warp the source features,
   and the RGB skip is built from the warped features only.
4. ``Generator`` holds ``enc`` and ``dec``; ``forward(source, driver)`` is the
   uncached reference path (two encodes + one render).

The layer layout is the one of LIA ``Generator(256, 512, 20)`` and ViCoFace
``Generator_Cycle(256, 512, 20, 10)``; with their configs the state dict is
key-for-key and shape-for-shape that of the released checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from networks.config import ModelConfig
from networks.layers import (
    ConstantInput,
    ConvLayer,
    Direction,
    EqualConv2d,
    EqualLinear,
    ResBlock,
    StyledConv,
    ToFlow,
    ToRGB,
)
from networks.motion import MotionMode, compose_latent


class EncoderApp(nn.Module):
    """Appearance encoder: ConvLayer 1x1, ``log2(S) - 2`` ResBlocks, a 4x4 conv to ``wa``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        size, blur = config.size, config.blur_kernel
        convs: list[nn.Module] = [ConvLayer(3, config.channels_at(size), 1, blur_kernel=blur)]
        resolution = size
        while resolution > 4:
            in_ch, out_ch = config.channels_at(resolution), config.channels_at(resolution // 2)
            convs.append(ResBlock(in_ch, out_ch, blur))
            resolution //= 2
        # No activation after the last conv: wa is a linear read-out of the 4x4 map.
        convs.append(EqualConv2d(config.channels_at(4), config.style_dim, 4, bias=False))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``x [B, 3, S, S]`` -> (``wa [B, style_dim]``, features 8 px .. S px)."""
        outputs = []
        for conv in self.convs:
            x = conv(x)
            outputs.append(x)
        # Reversed block outputs without the 1x1 code and the 4x4 map.
        return x.flatten(1), outputs[::-1][2:]


class Encoder(nn.Module):
    """``net_app`` (appearance) + ``fc`` (the affine motion MLP, ``n_fc`` layers)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim = config.style_dim
        self.net_app = EncoderApp(config)
        layers = [EqualLinear(dim, dim) for _ in range(config.n_fc - 1)]
        layers.append(EqualLinear(dim, config.coeff_dim))
        self.fc = nn.Sequential(*layers)

    def encode_appearance(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``x [B, 3, S, S]`` -> (``wa [B, style_dim]``, features coarse to fine)."""
        wa, feats = self.net_app(x)
        return wa, feats

    def encode_motion(self, x: Tensor) -> Tensor:
        """``x [B, 3, S, S]`` -> coefficients ``[B, M]`` (LIA's ``enc_motion``)."""
        wa, _ = self.net_app(x)
        coeffs: Tensor = self.fc(wa)
        return coeffs

    def forward(
        self, source: Tensor, driver: Tensor | None = None, h_start: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor] | None, list[Tensor]]:
        """LIA's three call forms (spec A.2): ``(wa_s, alphas or None, feats_s)``.

        ``alphas`` is ``[alpha_d]``, or ``[alpha_d, alpha_s, h_start]`` when
        ``h_start`` (the reference driver's coefficients) is given.
        """
        wa, feats = self.net_app(source)
        if driver is None:
            return wa, None, feats
        alpha_d = self.encode_motion(driver)
        if h_start is None:
            return wa, [alpha_d], feats
        return wa, [alpha_d, self.fc(wa), h_start], feats


class Synthesis(nn.Module):
    """Decoder: constant 4x4 input, per-scale (up-conv, conv, ToFlow, ToRGB).

    ``to_rgb1`` and ``upsamples`` exist for checkpoint compatibility only;
    the forward never uses them (neither does LIA's).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        style, blur = config.style_dim, config.blur_kernel
        self.config = config
        self.direction = Direction(style, config.coeff_dim)
        self.input = ConstantInput(config.channels_at(4))
        self.conv1 = StyledConv(config.channels_at(4), config.channels_at(4), 3, style, False, blur)
        self.to_rgb1 = ToRGB(config.channels_at(4), upsample=False, blur_kernel=blur)
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.to_flows = nn.ModuleList()
        in_ch = config.channels_at(4)
        for _, resolution, _ in config.feature_shapes:
            out_ch = config.channels_at(resolution)
            self.convs.append(StyledConv(in_ch, out_ch, 3, style, upsample=True, blur_kernel=blur))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style, blur_kernel=blur))
            self.to_rgbs.append(ToRGB(out_ch, blur_kernel=blur))
            self.to_flows.append(ToFlow(out_ch, style, resolution, blur_kernel=blur))
            in_ch = out_ch

    def latent(self, wa: Tensor, alpha: Tensor | None) -> Tensor:
        """``z = wa + D(alpha)`` ``[B, style_dim]``; ``alpha=None`` gives ``wa``.

        One composed ``alpha``: LIA's absolute mode, or any mode composed in
        coefficient space (`networks.motion.compose_alpha`). LIA's relative
        mode in LIA's own order is `networks.motion.relative_latent`.
        """
        return wa if alpha is None else wa + self.direction(alpha)

    def render(self, z: Tensor, feats: Sequence[Tensor]) -> Tensor:
        """``z [B, style_dim]`` + source features (coarse to fine) -> image ``[B, 3, S, S]``.

        No tanh and no clamp: the output range is the network's (spec A.9.7).
        """
        if len(feats) != len(self.to_flows):
            raise ValueError(f"expected {len(self.to_flows)} feature maps, got {len(feats)}")
        # LIA repeats z once per layer; every layer gets the same code.
        out = self.conv1(self.input(z), z)
        rgb: Tensor | None = None
        flow: Tensor | None = None
        for k, feat in enumerate(feats):
            out = self.convs[2 * k](out, z)
            out = self.convs[2 * k + 1](out, z)
            warped, out, flow = self.to_flows[k](out, z, feat, flow)
            rgb = self.to_rgbs[k](warped, rgb)
        if rgb is None:  # unreachable: a config has at least one scale
            raise ValueError("the decoder has no scales")
        return rgb

    def forward(self, wa: Tensor, alpha: Tensor | None, feats: Sequence[Tensor]) -> Tensor:
        """``wa [B, style]``, composed ``alpha [B, M]`` or None, feats -> ``[B, 3, S, S]``."""
        return self.render(self.latent(wa, alpha), feats)


class Generator(nn.Module):
    """LIA / ViCoFace generator with attributes ``enc`` (Encoder) and ``dec`` (Synthesis)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.enc = Encoder(config)
        self.dec = Synthesis(config)

    def get_direction(self) -> Tensor:
        """The orthonormal basis Q ``[style_dim, M]``."""
        return self.dec.direction(None)

    def synthesis(self, wa: Tensor, alpha: Tensor | None, feats: Sequence[Tensor]) -> Tensor:
        return self.dec(wa, alpha, feats)

    def forward(
        self,
        source: Tensor,
        driver: Tensor,
        mode: MotionMode | str = MotionMode.ABSOLUTE,
        reference: Tensor | None = None,
        strength: float = 1.0,
    ) -> Tensor:
        """Reenact ``source`` with ``driver`` (both ``[B, 3, S, S]`` in [-1, 1]), uncached.

        ``mode`` as in ``networks.motion``; ``reference [B or 1, 3, S, S]`` is
        the reference driving frame for relative mode. Default: absolute
        (LIA's training / evaluation path, ViCoFace's self path). The latent
        is composed in the order of the family's own code
        (`networks.motion.compose_latent`): LIA's relative mode is
        ``wa + (D(a_d) - D(a_d0)) + D(a_s)``, three applications of D.
        """
        wa, feats = self.enc.encode_appearance(source)
        alpha_d = self.enc.encode_motion(driver)
        alpha_0 = None if reference is None else self.enc.encode_motion(reference)
        z = compose_latent(
            self.dec.direction, wa, mode, alpha_d, self.enc.fc(wa), self.config.motion_dim,
            alpha_0, strength,
        )
        return self.dec.render(z, feats)
