"""Relative mode's order of operations: LIA's exactly in the generator, measured elsewhere.

LIA renders ``wa + (D(a_d) - D(a_d0)) + D(a_s)``; the exported ``generate``
graph takes one composed ``alpha = a_s + (a_d - a_d0)`` and applies D once.
The helpers here are a straightforward transcription of LIA's formula,
written without the vicocam code under test.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import Tensor

from networks.generator import Generator
from networks.motion import MotionMode, compose_alpha, compose_latent, relative_latent
from networks.random_init import random_generator
from tests.networks.conftest import tiny
from trt_engines.model_graphs import random_pictures

RELATIVE = MotionMode.RELATIVE
EPS32 = torch.finfo(torch.float32).eps


def lia_basis(weight: Tensor) -> Tensor:
    """LIA's ``Direction``: Q of the reduced QR of ``weight + 1e-8``."""
    return torch.linalg.qr(weight + 1e-8, mode="reduced").Q


def lia_direction(alpha: Tensor, q: Tensor) -> Tensor:
    """LIA's ``Direction.forward``: ``sum(diag_embed(alpha) @ Q^T, dim=1)``."""
    return torch.sum(torch.matmul(torch.diag_embed(alpha), q.T), dim=1)


def lia_relative(wa: Tensor, a_d: Tensor, a_s: Tensor, a_d0: Tensor, q: Tensor) -> Tensor:
    """LIA's ``Synthesis.forward`` with ``alpha = [a_d, a_s, a_d0]``."""
    target, source, start = (lia_direction(a, q) for a in (a_d, a_s, a_d0))
    return wa + (target - start) + source


def coefficient_order(wa: Tensor, a_d: Tensor, a_s: Tensor, a_d0: Tensor, q: Tensor) -> Tensor:
    """The single-``alpha`` order of the exported graph: ``wa + D(a_s + (a_d - a_d0))``."""
    return wa + lia_direction(a_s + (a_d - a_d0), q)


@pytest.fixture(scope="module")
def lia() -> Generator:
    return random_generator(tiny("lia"), seed=3)


class Encoded(NamedTuple):
    """Pictures as `Generator.forward` takes them and what its encoder makes of them."""

    source: Tensor  # [2, 3, S, S]
    driver: Tensor  # [2, 3, S, S]
    first: Tensor  # [1, 3, S, S], the reference driving frame
    wa: Tensor  # [2, style_dim]
    feats: list[Tensor]
    a_d: Tensor  # [2, M]
    a_s: Tensor  # [2, M]
    a_d0: Tensor  # [1, M]


def encoded(g: Generator) -> Encoded:
    size = g.config.size
    source, driver, first = (random_pictures(b, size, s) for b, s in ((2, 1), (2, 2), (1, 3)))
    with torch.no_grad():
        wa, feats = g.enc.encode_appearance(source)
        a_d, a_s, a_d0 = g.enc.encode_motion(driver), g.enc.fc(wa), g.enc.encode_motion(first)
    return Encoded(source, driver, first, wa, feats, a_d, a_s, a_d0)


def test_generator_relative_mode_is_lia_order_bit_for_bit(lia):
    e = encoded(lia)
    q = lia_basis(lia.dec.direction.weight.detach())
    with torch.no_grad():
        expected = lia.dec.render(lia_relative(e.wa, e.a_d, e.a_s, e.a_d0, q), e.feats)
        got = lia(e.source, e.driver, RELATIVE, e.first)
        single = coefficient_order(e.wa, e.a_d, e.a_s, e.a_d0, q)
        coefficient_first = lia.dec.render(single, e.feats)
    assert torch.equal(got, expected)
    # The check can fail: the other order gives other bits on these inputs.
    assert not torch.equal(coefficient_first, expected)


@pytest.mark.parametrize("seed", range(4))
def test_relative_latent_is_lia_formula_bit_for_bit(seed):
    rng = torch.Generator().manual_seed(seed)
    weight, wa = torch.randn(64, 20, generator=rng), torch.randn(8, 64, generator=rng)
    a_d, a_s, a_d0 = (3 * torch.randn(n, 20, generator=rng) for n in (8, 1, 1))
    q = lia_basis(weight)
    got = compose_latent(lambda a: lia_direction(a, q), wa, RELATIVE, a_d, a_s, 20, a_d0)
    assert torch.equal(got, lia_relative(wa, a_d, a_s, a_d0, q))
    assert not torch.equal(got, coefficient_order(wa, a_d, a_s, a_d0, q))


def test_strength_scales_the_moved_directions():
    rng = torch.Generator().manual_seed(5)
    q = lia_basis(torch.randn(64, 20, generator=rng))
    wa, a_d, a_s, a_d0 = (torch.randn(1, n, generator=rng) for n in (64, 20, 20, 20))

    def d(a: Tensor) -> Tensor:
        return a @ q.T

    half = relative_latent(d, wa, a_d, a_s, a_d0, strength=0.5)
    assert torch.equal(half, wa + 0.5 * (d(a_d) - d(a_d0)) + d(a_s))
    still = relative_latent(d, wa, a_d, a_s, a_d0, strength=0.0)
    assert torch.equal(still, wa + d(a_s))  # the avatar's own latent, in both orders
    assert torch.equal(still, wa + d(compose_alpha(RELATIVE, a_d, a_s, 20, a_d0, 0.0)))


def test_vicoface_relative_mode_keeps_vicoface_order():
    rng = torch.Generator().manual_seed(6)
    q = lia_basis(torch.randn(64, 30, generator=rng))
    wa, a_d, a_s, a_d0 = (torch.randn(2, n, generator=rng) for n in (64, 30, 30, 30))
    got = compose_latent(lambda a: lia_direction(a, q), wa, RELATIVE, a_d, a_s, 20, a_d0)
    # ViCoFace's decode_latent_codeW: D([a_d - a_d0 + a_s ; b_s]), one application of D.
    alpha = torch.cat([a_d[:, :20] - a_d0[:, :20] + a_s[:, :20], a_s[:, 20:]], dim=1)
    assert torch.equal(got, wa + lia_direction(alpha, q))


@pytest.mark.parametrize("mode", [MotionMode.ABSOLUTE, MotionMode.CROSS])
def test_other_modes_apply_the_decoder_once(mode):
    rng = torch.Generator().manual_seed(7)
    q = lia_basis(torch.randn(64, 30, generator=rng))
    wa, a_d, a_s = (torch.randn(2, n, generator=rng) for n in (64, 30, 30))
    got = compose_latent(lambda a: a @ q.T, wa, mode, a_d, a_s, 20, strength=0.7)
    assert torch.equal(got, wa + compose_alpha(mode, a_d, a_s, 20, strength=0.7) @ q.T)


def test_compose_latent_checks_its_inputs():
    wa, coeffs = torch.zeros(1, 64), torch.zeros(1, 20)
    with pytest.raises(ValueError, match="reference"):
        compose_latent(lambda a: a, wa, RELATIVE, coeffs, coeffs, 20)
    with pytest.raises(ValueError, match="same model"):
        compose_latent(lambda a: a, wa, RELATIVE, coeffs, torch.zeros(1, 30), 20, coeffs)


# --- the single-alpha path (exported graph, live stage): how far from LIA's order ---

ORDER_ULPS = 4.0
"""Bound on ``|z_coefficient - z_lia|`` in float32 eps of the term magnitudes (measured 2.0)."""


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_coefficient_order_is_within_a_few_ulps_of_lia_order(scale):
    rng = torch.Generator().manual_seed(8)
    q = lia_basis(torch.randn(512, 20, generator=rng))
    wa = torch.randn(512, 512, generator=rng)
    a_d, a_s, a_d0 = (scale * torch.randn(512, 20, generator=rng) for _ in range(3))
    lia_z, coef_z = lia_relative(wa, a_d, a_s, a_d0, q), coefficient_order(wa, a_d, a_s, a_d0, q)
    # The usual rounding-error scale: |wa| + sum over the terms of |a| @ |Q|^T.
    magnitude = wa.abs() + sum(a.abs() @ q.abs().T for a in (a_d, a_s, a_d0))
    ulps = ((coef_z - lia_z).abs() / (EPS32 * magnitude)).max().item()
    assert 0 < ulps <= ORDER_ULPS


IMAGE_ATOL = 1e-5
"""Bound on the max abs image difference the order makes (32 px random LIA; measured 9e-7)."""


def test_coefficient_order_changes_the_image_below_engine_tolerances(lia):
    e = encoded(lia)
    q = lia_basis(lia.dec.direction.weight.detach())
    with torch.no_grad():
        exact = lia.dec.render(lia_relative(e.wa, e.a_d, e.a_s, e.a_d0, q), e.feats)
        single = lia.dec.render(coefficient_order(e.wa, e.a_d, e.a_s, e.a_d0, q), e.feats)
    assert 0 < (single - exact).abs().max().item() <= IMAGE_ATOL
