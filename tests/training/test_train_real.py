"""`vicocam train --data ROOT`: training on real clips in the FOMM/LIA layout."""

import pytest

from networks.checkpoint import TrainingDomain, read_checkpoint
from pipeline.app.cli import main


@pytest.fixture()
def clip_root(tmp_path, shared_media):
    root = tmp_path / "clips"
    (root / "train").mkdir(parents=True)
    for name in ("driving1", "driving2"):
        (root / "train" / f"{name}.mp4").symlink_to(shared_media / f"{name}.mp4")
    return root


def _args(run, root, *extra):
    return ["train", "--run-dir", str(run), "--data", str(root), "--steps", "2",
            "--batch-size", "2", "--workers", "0", "--loss", "gan_g=0",
            "--no-progress", *extra]  # fmt: skip


def test_lia_recipe_trains_on_real_clips(tmp_path, clip_root):
    run = tmp_path / "run"
    assert main(_args(run, clip_root, "--recipe", "lia", "--model", "lia-32t")) == 0
    model = run / "checkpoints" / "step_0000002.safetensors"
    assert read_checkpoint(model).domain is TrainingDomain.REAL_FACES  # not the synthetic world


def test_vicoface_recipe_on_real_clips_without_ground_truth(tmp_path, clip_root, capsys):
    run = tmp_path / "run"
    base = _args(run, clip_root, "--recipe", "vicoface", "--model", "vicoface-32t",
                 "--loss", "gan_cross_g=0")  # fmt: skip
    assert main([*base, "--cross-target", "ground_truth"]) == 2
    assert "no cross-subject ground truth" in capsys.readouterr().err
    assert main([*base, "--cross-target", "none"]) == 0
    assert (run / "checkpoints" / "step_0000002.safetensors").is_file()


def test_a_missing_data_root_is_a_clear_error(tmp_path, capsys):
    code = main(_args(tmp_path / "run", tmp_path / "nowhere", "--recipe", "lia",
                      "--model", "lia-32t"))  # fmt: skip
    assert code == 2
    assert "nowhere" in capsys.readouterr().err
