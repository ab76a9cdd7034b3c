"""Building blocks: the two modulated-conv forms, FIR filters, grids and the QR basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from networks.layers import (
    Blur,
    Direction,
    ModulatedConv2d,
    ToRGB,
    Upsample,
    identity_grid,
    set_fused_modconv,
)

MODCONV_VARIANTS = {
    "3x3": {"kernel_size": 3, "demodulate": True, "upsample": False},
    "upsample": {"kernel_size": 3, "demodulate": True, "upsample": True},
    "1x1-no-demod": {"kernel_size": 1, "demodulate": False, "upsample": False},
}


@pytest.mark.parametrize("variant", list(MODCONV_VARIANTS))
def test_fused_and_unfused_modulated_conv_agree(variant: str):
    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 8, style_dim=32, **MODCONV_VARIANTS[variant])  # type: ignore[arg-type]
    with torch.no_grad():  # non-trivial modulation so every sample differs
        conv.modulation.bias.normal_()
    x, style = torch.randn(3, 16, 8, 8), torch.randn(3, 32)
    fused = conv(x, style)
    conv.fused = False
    unfused = conv(x, style)
    expected = (3, 8, 16, 16) if conv.upsample else (3, 8, 8, 8)
    assert fused.shape == unfused.shape == expected
    torch.testing.assert_close(unfused, fused, rtol=1e-5, atol=1e-5)


def test_unfused_modulated_conv_is_per_sample():
    # Sample 1 alone must give the same result as inside a batch (no cross-talk).
    torch.manual_seed(1)
    conv = ModulatedConv2d(8, 4, 3, style_dim=16, upsample=True, fused=False)
    x, style = torch.randn(2, 8, 4, 4), torch.randn(2, 16)
    torch.testing.assert_close(conv(x, style)[1:], conv(x[1:], style[1:]))


def test_set_fused_modconv_switches_every_modconv():
    module = torch.nn.Sequential(ModulatedConv2d(4, 4, 3, 8), ModulatedConv2d(4, 3, 1, 8))
    set_fused_modconv(module, False)
    assert [m.fused for m in module] == [False, False]


def test_identity_grid_is_lia_numpy_grid():
    xs = np.linspace(-1, 1, 8)
    reference = np.stack(np.meshgrid(xs, xs), 2).astype(np.float32)[None]
    np.testing.assert_array_equal(identity_grid(8).numpy(), reference)


def test_blur_and_upsample_keep_a_constant_image_constant_inside():
    x = torch.full((1, 2, 8, 8), 3.0)
    blurred = Blur((1, 3, 3, 1), pad=(2, 2), channels=2)(x)
    upsampled = Upsample(channels=2)(x)
    assert blurred.shape == (1, 2, 9, 9) and upsampled.shape == (1, 2, 16, 16)
    torch.testing.assert_close(blurred[..., 3:-3, 3:-3], torch.full((1, 2, 3, 3), 3.0))
    torch.testing.assert_close(upsampled[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0))


def test_to_rgb_has_leaky_relu_and_double_bias():
    rgb = ToRGB(4, upsample=False)
    state = rgb.state_dict()
    state["conv.0.weight"].zero_()
    state["conv.1.bias"].fill_(-1.0)  # inside the leaky ReLU
    state["bias"].fill_(0.5)  # after it
    out = rgb(torch.randn(1, 4, 2, 2))
    torch.testing.assert_close(out, torch.full((1, 3, 2, 2), -0.2 * 2**0.5 + 0.5))


def test_direction_basis_is_orthonormal_and_frozen_form_matches():
    torch.manual_seed(2)
    direction = Direction(64, 30)
    alpha = torch.randn(3, 30)
    q = direction(None)
    torch.testing.assert_close(q.t() @ q, torch.eye(30), atol=1e-5, rtol=0)
    reference = direction(alpha)  # diag_embed form, QR recomputed
    direction.freeze()
    torch.testing.assert_close(direction(alpha), reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(direction(None), q)
    assert "q" not in direction.state_dict()


def test_loading_weights_into_a_frozen_direction_refreshes_q():
    direction = Direction(16, 4)
    direction.freeze()
    other = Direction(16, 4)
    direction.load_state_dict(other.state_dict())
    torch.testing.assert_close(direction(None), other(None))
