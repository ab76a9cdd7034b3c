"""Losses, the VGG19 loader, auxiliary networks and the LIA -> ViCoFace conversion."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pytest
import torch

from networks.generator import Generator
from training.aux_nets import (
    AuxNetConfig,
    AuxTrainConfig,
    build_aux_net,
    load_aux_net,
    save_aux_net,
    train_identity_embedder,
)
from training.config import LossWeights, TrainConfig
from training.finetune import lia_to_vicoface
from training.losses import (
    AntiAliasDownsample,
    ImagePyramid,
    PerceptualLoss,
    discriminator_adv_loss,
    edge_loss,
    face68_landmark_weights,
    generator_adv_loss,
    identity_loss,
    landmark_loss,
)
from training.models import TINY_CONFIGS
from training.objectives import build_objectives
from training.paths import TrainBatch
from training.vgg import RELU_TAPS, VGG19Features, load_vgg19, maybe_load_vgg19


def test_pyramid_halves_and_keeps_a_flat_interior():
    x = torch.full((2, 3, 32, 32), 0.3)
    levels = ImagePyramid()(x)
    assert [lvl.shape[-1] for lvl in levels] == [32, 16, 8, 4]
    half = AntiAliasDownsample(0.5)(x)
    # Zero padding darkens the border only; the Gaussian sums to one inside.
    assert torch.allclose(half[..., 3:-3, 3:-3], torch.full_like(half[..., 3:-3, 3:-3], 0.3))


def test_gan_losses_have_the_softplus_values():
    zeros = torch.zeros(4, 1)
    assert generator_adv_loss(zeros).item() == pytest.approx(math.log(2))
    assert discriminator_adv_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    confident = discriminator_adv_loss(torch.full((4, 1), 20.0), torch.full((4, 1), -20.0))
    assert confident.item() < 1e-6


def test_edge_loss_ignores_a_constant_offset_but_not_a_blur():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert edge_loss(x + 0.3, x).item() == pytest.approx(0.0, abs=1e-6)
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert edge_loss(blurred, x).item() > 0.1
    assert edge_loss(blurred, x, statistical=True).item() > 0.0


def test_weighted_landmark_loss_normalises_by_the_weight_sum():
    target = torch.zeros(1, 68, 2)
    moved = target.clone()
    moved[0, 8] = torch.tensor([0.3, 0.1])  # a chin point, weight 1.5
    w = face68_landmark_weights()
    assert w[8] == 1.5 and w[1] == 2.0 and w[30] == 0.5
    expected = 1.5 * 0.4 / (2 * w.sum().item())
    assert landmark_loss(moved, target, w).item() == pytest.approx(expected)
    assert landmark_loss(target, target, w).item() == 0.0


def test_identity_loss_is_zero_for_the_same_embedding_and_positive_otherwise():
    net = build_aux_net(AuxNetConfig("identity", input_size=16, channels=(8, 8), num_classes=3))
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert identity_loss(net, x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert identity_loss(net, x, y).item() > 0.0


def _fake_torchvision_vgg19() -> dict[str, torch.Tensor]:
    """A state dict with torchvision's keys and shapes (random values) plus a classifier."""
    state = {f"features.{k}": torch.randn_like(v) * 0.05 for k, v in
             VGG19Features().features.state_dict().items()}  # fmt: skip
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


def test_vgg19_loads_torchvision_format_and_taps_five_relus(tmp_path):
    path = tmp_path / "vgg19.pth"
    state = _fake_torchvision_vgg19()
    torch.save(state, path)
    vgg = load_vgg19(path)
    assert torch.equal(vgg.features.state_dict()["0.weight"], state["features.0.weight"])
    taps = vgg(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert [t.shape[1] for t in taps] == [64, 128, 256, 512, 512]
    assert len(RELU_TAPS) == 5 and not any(p.requires_grad for p in vgg.parameters())
    loss = PerceptualLoss(vgg)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    assert loss(x, -x).item() > 0.0


def test_vgg19_refuses_a_wrong_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG19 weights not found"):
        load_vgg19(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a VGG19 state dict"):
        load_vgg19(bad)


def test_missing_vgg_weights_switch_the_perceptual_loss_off_with_a_message(caplog):
    with caplog.at_level(logging.WARNING):
        assert maybe_load_vgg19(None) is None
    assert "perceptual (VGG) loss is OFF" in caplog.text
    config = TrainConfig(model="lia-32t", losses=replace(LossWeights.lia(), gan_g=0.0))
    objectives = build_objectives(config, torch.device("cpu"))
    assert objectives.perceptual is None
    gen = Generator(TINY_CONFIGS["lia-32t"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    _, terms = objectives.generator_loss({"self": gen(x, x)}, TrainBatch(x, x), torch.nn.Identity())
    assert set(terms) == {"l1", "g_total"}


def test_aux_net_round_trips_through_safetensors(tmp_path):
    net = build_aux_net(AuxNetConfig("landmarks", input_size=16, channels=(8, 8), out_dim=5))
    path = tmp_path / "lmk.safetensors"
    save_aux_net(net, path)
    loaded = load_aux_net(path)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(x), net.eval()(x))
    assert loaded(x).shape == (2, 5, 2)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_identity_embedder_learns_colour_identities():
    colours = torch.rand(4, 3, 1, 1) * 2 - 1

    def batches():
        g = torch.Generator().manual_seed(0)
        while True:
            labels = torch.randint(0, 4, (16,), generator=g)
            noise = torch.randn(16, 3, 16, 16, generator=g) * 0.2
            yield colours[labels] + noise, labels

    config = AuxNetConfig("identity", input_size=16, channels=(8, 16), num_classes=4)
    net = train_identity_embedder(batches(), 4, AuxTrainConfig(steps=60, lr=5e-3), config)
    x, y = next(batches())
    accuracy = (net.classify(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9


def test_lia_to_vicoface_keeps_the_lia_basis_and_output():
    lia = Generator(TINY_CONFIGS["lia-32t"]).eval()
    vcf_config = TINY_CONFIGS["vicoface-32t"]
    state = lia_to_vicoface(lia.state_dict(), vcf_config, new_row_std=0.0)
    vcf = Generator(vcf_config)
    vcf.load_state_dict(state)
    vcf.eval()
    q_lia, q_vcf = lia.get_direction(), vcf.get_direction()
    assert torch.allclose(q_vcf[:, :20], q_lia, atol=1e-5)
    assert torch.allclose(q_vcf.t() @ q_vcf, torch.eye(30), atol=1e-5)
    x, d = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(vcf(x, d), lia(x, d), atol=1e-4)
    with pytest.raises(ValueError, match="not a ViCoFace config"):
        lia_to_vicoface(lia.state_dict(), TINY_CONFIGS["lia-32t"])
