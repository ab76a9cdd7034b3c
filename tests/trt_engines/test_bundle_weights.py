"""`load_reenactor`: the weights, where they came from and what they were trained on."""

from __future__ import annotations

import torch

from networks.checkpoint import TrainingDomain, save_checkpoint
from networks.config import custom_config
from networks.generator import Generator
from trt_engines.bundle import bundled_checkpoint, load_reenactor

TINY = custom_config("lia-64s", name="tiny-lia", size=32, channels=(32, 32, 16, 8), style_dim=64)


def test_the_bundled_weights_are_trained_on_the_synthetic_world():
    path = bundled_checkpoint()
    assert path is not None
    weights = load_reenactor(path)
    assert weights.trained and weights.domain is TrainingDomain.SYNTHETIC_WORLD
    assert weights.label == f"vicoface-64s from {path.name}"


def test_a_release_file_is_real_faces_and_random_weights_model_nothing(tmp_path):
    release = tmp_path / "vox.pt"
    torch.save({"gen": Generator(TINY).state_dict()}, release)
    assert load_reenactor(release).domain is TrainingDomain.REAL_FACES
    mine = tmp_path / "mine.safetensors"
    save_checkpoint(mine, Generator(TINY), domain=TrainingDomain.REAL_FACES)
    assert load_reenactor(mine).domain is TrainingDomain.REAL_FACES
    random = load_reenactor(None, "vicoface-64s")
    assert not random.trained and random.domain is None
