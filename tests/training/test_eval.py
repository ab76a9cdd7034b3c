"""Evaluation metrics and reports on hand-built cases with known numbers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from networks.checkpoint import save_checkpoint
from networks.generator import Generator
from pipeline.app.cli import main
from training.evaluate import EvalBatch, EvalReport, evaluate_task, write_report
from training.metrics import (
    l1_per_image,
    masked_l1_per_image,
    psnr_per_image,
    ssim_per_image,
)
from training.models import TINY_CONFIGS


def images(value: float, n: int = 2, size: int = 16) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def test_identical_images_score_perfectly():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(l1_per_image(x, x), torch.zeros(2))
    assert torch.isinf(psnr_per_image(x, x)).all()
    assert torch.allclose(ssim_per_image(x, x), torch.ones(2))


def test_a_constant_offset_gives_the_known_l1_and_psnr():
    truth = images(0.0)
    output = images(0.2)  # +0.1 in [0, 1] units
    assert l1_per_image(output, truth) == pytest.approx([0.1, 0.1])
    assert psnr_per_image(output, truth) == pytest.approx([20.0, 20.0])  # 10 log10(1 / 0.01)


def test_ssim_of_flat_images_matches_the_closed_form():
    a01, b01 = 0.75, 0.25  # [0, 1] values of the flat images
    expected = (2 * a01 * b01 + 0.01**2) / (a01**2 + b01**2 + 0.01**2)
    assert ssim_per_image(images(0.5), images(-0.5)) == pytest.approx([expected] * 2, rel=1e-5)


def test_masked_l1_counts_only_the_masked_pixels():
    truth = images(0.0, n=1)
    output = truth.clone()
    output[..., :8] = 1.0  # left half off by 0.5 in [0, 1] units
    mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    mask[..., :4] = True  # inside the wrong half
    assert masked_l1_per_image(output, truth, mask).item() == pytest.approx(0.5)
    mask[..., :] = False
    mask[..., 12:] = True  # inside the right half
    assert masked_l1_per_image(output, truth, mask).item() == 0.0
    assert math.isnan(masked_l1_per_image(output, truth, torch.zeros_like(mask)).item())


def test_evaluate_task_scores_methods_on_a_hand_built_batch():
    truth = images(0.0)
    batch = EvalBatch(
        avatar=truth.clone(), driver=images(0.2), truth=truth, attr_mask=torch.ones(2, 1, 16, 16)
    )
    results = evaluate_task({"avatar": lambda a, d: a, "driver": lambda a, d: d}, [batch, batch])
    assert results["avatar"]["psnr"] == math.inf and results["avatar"]["l1"] == 0.0
    assert results["driver"]["psnr"] == pytest.approx(20.0)
    assert results["driver"]["attr_error"] == pytest.approx(0.1)


def test_report_writes_markdown_and_the_flat_json(tmp_path):
    m = {"l1": 0.1, "psnr": 20.0, "ssim": 0.9, "attr_error": 0.05}
    report = EvalReport(
        {"self": {"model": m, "avatar": m, "driver": m},
         "cross": {"model": m, "avatar": m | {"psnr": 18.0}, "driver": m | {"psnr": math.inf}}},
        identities_heldout=7,
    )  # fmt: skip
    write_report(report, tmp_path / "t.md", tmp_path / "t.json")
    flat = json.loads((tmp_path / "t.json").read_text())
    assert flat["cross_psnr"] == 20.0 and flat["baseline_avatar_psnr"] == 18.0
    assert flat["baseline_driver_psnr"] == "inf" and flat["identities_heldout"] == 7
    assert "| cross | avatar | 0.1000 | 18.00 |" in (tmp_path / "t.md").read_text()


def test_vicocam_eval_scores_a_checkpoint_on_heldout_identities(tmp_path):
    torch.set_num_threads(1)
    path = tmp_path / "tiny.safetensors"
    torch.manual_seed(0)
    save_checkpoint(path, Generator(TINY_CONFIGS["vicoface-32t"]))
    out = tmp_path / "eval.json"
    grid = tmp_path / "grid.png"
    code = main(["eval", "--checkpoint", str(path), "--samples", "4", "--json", str(out),
                 "--grid", str(grid), "--split", "val"])  # fmt: skip
    assert code == 0
    flat = json.loads(out.read_text())
    for key in ("self_psnr", "cross_psnr", "cross_l1", "cross_ssim", "attr_error",
                "baseline_avatar_psnr", "baseline_driver_psnr", "identities_heldout"):  # fmt: skip
        assert key in flat
    assert flat["identities_heldout"] == 100
    # An untrained model cannot beat keeping the avatar on held-out identities.
    assert flat["cross_psnr"] < flat["baseline_avatar_psnr"]
    assert grid.stat().st_size > 0
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2


def test_the_bundled_model_beats_the_best_trivial_baseline_on_heldout_identities(tmp_path):
    """The shipped model's reason to exist: 3 dB over keeping the avatar or copying the driver.

    RESULTS.md reports the same figure (`vicocam eval`, 256 held-out cross pairs).
    """
    from pathlib import Path

    bundled = (
        Path(__file__).resolve().parents[2] / "networks/pretrained/vicoface-64s-world.safetensors"
    )
    torch.set_num_threads(2)
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(bundled), "--samples", "256", "--json", str(out)]) == 0
    flat = json.loads(out.read_text())
    best_baseline = max(flat["baseline_avatar_psnr"], flat["baseline_driver_psnr"])
    assert flat["cross_psnr"] - best_baseline >= 3.0
    assert flat["attr_error"] < flat["baseline_avatar_attr_error"]
