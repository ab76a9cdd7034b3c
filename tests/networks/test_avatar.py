"""Avatar inference: cached path == reference path, motion modes, a stream with its reference."""

from __future__ import annotations

import copy

import pytest
import torch

from networks.avatar import Avatar, Reenactor
from networks.config import ModelConfig
from networks.generator import Generator
from networks.motion import MotionMode, compose_alpha, default_mode
from networks.reference import RelativeReference
from tests.networks.conftest import random_images, tiny


def built(config: ModelConfig, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    generator = Generator(config).double().eval()
    with torch.no_grad():  # varied styles so samples and modes really differ
        for name, p in generator.named_parameters():
            if name.endswith("modulation.bias"):
                p.add_(0.3 * torch.randn_like(p))
    return generator


@pytest.fixture
def setup(tiny_config):
    generator = built(tiny_config)
    reference = copy.deepcopy(generator)  # keeps the fused convs and the per-call QR
    reenactor = Reenactor(generator)
    avatar = reenactor.prepare_avatar(random_images(1, 32, seed=10))
    return reference, reenactor, avatar


def images(batch: int, seed: int) -> torch.Tensor:
    return random_images(batch, 32, seed).double()


def test_avatar_caches_latent_features_and_coefficients(setup):
    _, reenactor, avatar = setup
    cfg = reenactor.config
    assert avatar.latent.shape == (1, cfg.style_dim)
    assert [tuple(f.shape[1:]) for f in avatar.feats] == list(cfg.feature_shapes)
    assert avatar.coeffs.shape == (1, cfg.coeff_dim)
    assert avatar.motion.shape == (1, cfg.motion_dim)
    assert avatar.identity.shape == (1, cfg.id_dim)


@pytest.mark.parametrize("mode", list(MotionMode))
def test_cached_avatar_path_equals_the_full_forward(setup, mode):
    reference_model, reenactor, avatar = setup
    source, driver, first = images(1, 10), images(3, 20), images(1, 30)
    with torch.no_grad():
        expected = reference_model(source.expand(3, -1, -1, -1), driver, mode, first)
    coeffs = reenactor.encode_motion(driver)
    ref = reenactor.encode_motion(first)
    got = reenactor.generate(avatar, reenactor.compose(avatar, coeffs, mode, ref))
    assert got.shape == (3, 3, 32, 32)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def drive(
    reenactor: Reenactor,
    avatar: Avatar,
    tracker: RelativeReference,
    driver: torch.Tensor,
    mode: MotionMode = MotionMode.RELATIVE,
    resets: int = 0,
    strength: float = 1.0,
) -> torch.Tensor:
    """One frame the way the generate stage makes it: encode, track the reference, render."""
    coeffs = reenactor.encode_motion(driver)
    reference = tracker.update(mode, resets, coeffs).coeffs
    return reenactor.generate(avatar, reenactor.compose(avatar, coeffs, mode, reference, strength))


def test_relative_mode_with_the_reference_as_driver_reconstructs_the_avatar(setup):
    _, reenactor, avatar = setup
    tracker = RelativeReference()
    first = images(1, 40)
    out = drive(reenactor, avatar, tracker, first)  # the first frame becomes the reference
    torch.testing.assert_close(out, reenactor.reconstruct(avatar), rtol=0, atol=1e-12)
    assert tracker.coeffs is not None
    torch.testing.assert_close(drive(reenactor, avatar, tracker, first), out)


def test_a_reset_request_makes_the_next_frame_the_reference(setup):
    _, reenactor, avatar = setup
    tracker = RelativeReference()
    recon = reenactor.reconstruct(avatar)
    drive(reenactor, avatar, tracker, images(1, 41))
    moved = drive(reenactor, avatar, tracker, images(1, 42))
    assert (moved - recon).abs().max() > 1e-3
    again = drive(reenactor, avatar, tracker, images(1, 42), resets=1)
    torch.testing.assert_close(again, recon, rtol=0, atol=1e-12)


def test_changing_the_mode_starts_a_new_reference(setup):
    _, reenactor, avatar = setup
    tracker = RelativeReference()
    drive(reenactor, avatar, tracker, images(1, 41))
    drive(reenactor, avatar, tracker, images(1, 42), MotionMode.ABSOLUTE)
    drive(reenactor, avatar, tracker, images(1, 42), MotionMode.ABSOLUTE, strength=0.5)
    out = drive(reenactor, avatar, tracker, images(1, 43))  # back to relative
    torch.testing.assert_close(tracker.coeffs, reenactor.encode_motion(images(1, 43)))
    torch.testing.assert_close(out, reenactor.reconstruct(avatar), rtol=0, atol=1e-12)


def test_a_strength_change_keeps_the_reference(setup):
    _, reenactor, avatar = setup
    tracker = RelativeReference()
    drive(reenactor, avatar, tracker, images(1, 41))
    drive(reenactor, avatar, tracker, images(1, 42), strength=0.5)
    torch.testing.assert_close(tracker.coeffs, reenactor.encode_motion(images(1, 41)))


def test_zero_strength_freezes_the_avatar(setup):
    _, reenactor, avatar = setup
    mode = default_mode(reenactor.config.family)
    frozen = drive(reenactor, avatar, RelativeReference(), images(1, 44), mode, strength=0.0)
    torch.testing.assert_close(frozen, reenactor.reconstruct(avatar))


def test_default_mode_is_cross_for_vicoface_and_relative_for_lia():
    assert default_mode("vicoface") is MotionMode.CROSS
    assert default_mode("lia") is MotionMode.RELATIVE
    reenactor = Reenactor(built(tiny("vicoface")))
    avatar = reenactor.prepare_avatar(images(1, 1))
    coeffs = reenactor.encode_motion(images(2, 2))
    expected = compose_alpha(MotionMode.CROSS, coeffs, avatar.coeffs, 20)
    torch.testing.assert_close(reenactor.compose(avatar, coeffs), expected)


def test_wrong_image_shape_is_a_clear_error(setup):
    _, reenactor, _ = setup
    with pytest.raises(ValueError, match=r"must be \[B, 3, 32, 32\]"):
        reenactor.prepare_avatar(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="one avatar at a time"):
        reenactor.prepare_avatar(torch.zeros(2, 3, 32, 32))


# --- composition rules on plain vectors (spec A.3 / B.2) ---

A_DIM = 2
DRIVER = torch.tensor([[1.0, 2.0, 3.0]])  # [a_d ; b_d]
AVATAR = torch.tensor([[10.0, 20.0, 30.0]])  # [a_s ; b_s]
REFERENCE = torch.tensor([[0.5, 1.0, 7.0]])  # [a_d0 ; b_d0]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (MotionMode.ABSOLUTE, [1.0, 2.0, 3.0]),
        (MotionMode.CROSS, [1.0, 2.0, 30.0]),
        (MotionMode.RELATIVE, [10.5, 21.0, 30.0]),
    ],
)
def test_composition_rules(mode, expected):
    alpha = compose_alpha(mode, DRIVER, AVATAR, A_DIM, REFERENCE)
    torch.testing.assert_close(alpha, torch.tensor([expected]))


@pytest.mark.parametrize("mode", list(MotionMode))
def test_strength_scales_the_delta_from_the_avatar(mode):
    full = compose_alpha(mode, DRIVER, AVATAR, A_DIM, REFERENCE)
    half = compose_alpha(mode, DRIVER, AVATAR, A_DIM, REFERENCE, strength=0.5)
    torch.testing.assert_close(half, (AVATAR + full) / 2)


def test_relative_mode_without_reference_is_an_error():
    with pytest.raises(ValueError, match="reference"):
        compose_alpha("relative", DRIVER, AVATAR, A_DIM)


def test_alpha_of_the_wrong_width_is_a_clear_error(setup):
    _, reenactor, avatar = setup
    with pytest.raises(ValueError, match="alpha must be"):
        reenactor.generate(avatar, torch.zeros(1, reenactor.config.coeff_dim + 1))


def test_encoder_call_forms_follow_lia(setup):
    reference_model, _, _ = setup
    enc = reference_model.enc
    source, driver = images(1, 1), images(1, 2)
    h_start = torch.randn(1, reference_model.config.coeff_dim, dtype=torch.float64)
    with torch.no_grad():
        wa, none, feats = enc(source, None)
        _, (alpha_d,), _ = enc(source, driver)
        _, (alpha_d2, alpha_s, h), _ = enc(source, driver, h_start)
        torch.testing.assert_close(alpha_s, enc.fc(wa))
    assert none is None and len(feats) == reference_model.config.num_scales
    torch.testing.assert_close(alpha_d, enc.encode_motion(driver))
    torch.testing.assert_close(alpha_d2, alpha_d)
    assert h is h_start
