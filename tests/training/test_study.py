"""The LIA-vs-ViCoFace study: its pair set, scores, stopping rule, verdict, and a tiny run."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import pytest
import torch

from training.experiments import main, verdict
from training.study.config import StudyConfig, StudyPaths, ablation_config, arm_config
from training.study.figures import nice_ticks
from training.study.pairs import ShapeScale, build_cross_pairs
from training.study.runs import Plateau
from training.study.scores import across_seeds, score_pairs, seed_statistics, summarise
from training.world.identity import HairStyle

from .conftest import first_seed_with


def test_shape_distance_is_zero_for_one_identity_and_counts_a_hair_style_change(small_world):
    scale = ShapeScale.of_split(small_world, "train")
    a = small_world.identity("train", 0)
    assert scale.distance(a, a) == 0.0
    bun = first_seed_with(HairStyle.BUN)
    afro = first_seed_with(HairStyle.AFRO)
    from training.world.identity import Identity

    bun_id, afro_id = Identity.from_seed(bun), Identity.from_seed(afro)
    restyled = replace(afro_id, hair=replace(afro_id.hair, style=HairStyle.BUN))
    # Same numbers, another style: exactly the style step apart.
    assert scale.distance(afro_id, restyled) == pytest.approx(1.0)
    assert scale.distance(bun_id, afro_id) > 1.0


def test_the_mismatch_subset_is_the_share_of_pairs_farthest_apart(small_world):
    pairs = build_cross_pairs(small_world, "test", 32, 12, mismatch_share=0.25)
    assert int(pairs.mismatch.sum()) == 3
    assert pairs.shape_distance[pairs.mismatch].min() >= pairs.shape_distance[~pairs.mismatch].max()
    assert set(pairs.masks) == {"hair", "torso", "face_outline"}
    assert (pairs.identities[:, 0] != pairs.identities[:, 1]).all()
    with pytest.raises(ValueError, match="mismatch_share"):
        build_cross_pairs(small_world, "test", 32, 4, mismatch_share=0.0)


class _Embed(torch.nn.Module):
    """A judge that embeds an image as its mean colour: a known identity distance."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean((2, 3)) + 2.0


def test_scores_of_the_avatar_baseline_are_known(small_world):
    pairs = build_cross_pairs(small_world, "test", 32, 6)
    keep = score_pairs(lambda avatar, driver: avatar, pairs, _Embed(), batch=4)
    truth = score_pairs(lambda avatar, driver: pairs.truth[: len(avatar)], pairs, _Embed(), 6)
    assert keep["identity_distance"] == pytest.approx(torch.zeros(6), abs=1e-6)
    assert torch.isinf(truth["psnr"]).all() and (truth["attr_error"].nan_to_num(0) == 0).all()
    assert keep["attr_error"].nanmean() > 0
    for name in ("attr_hair", "attr_torso", "attr_face_outline", "ssim", "l1"):
        assert keep[name].shape == (6,)


def test_summaries_skip_nan_and_split_the_subset():
    scores = {"attr_error": torch.tensor([0.1, math.nan, 0.3, 0.5])}
    mismatch = torch.tensor([False, True, True, True])
    summary = summarise(scores, mismatch)
    assert summary["all"]["attr_error"] == pytest.approx(0.3)
    assert summary["mismatch"]["attr_error"] == pytest.approx(0.4)


def test_seed_statistics_are_mean_and_sample_spread():
    stats = seed_statistics([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["spread"] == pytest.approx(1.0)
    assert seed_statistics([4.0])["spread"] == 0.0
    with pytest.raises(ValueError):
        seed_statistics([])


def _arm(attr: list[float], ident: list[float], psnr: list[float]) -> dict:
    seeds = [
        {"all": {"psnr": p, "attr_error": a, "identity_distance": i},
         "mismatch": {"psnr": p, "attr_error": a, "identity_distance": i}}
        for a, i, p in zip(attr, ident, psnr, strict=True)
    ]  # fmt: skip
    return across_seeds(seeds)


def test_verdict_needs_a_gain_beyond_twice_the_seed_spread():
    lia = _arm([0.10, 0.11, 0.12], [0.30, 0.31, 0.32], [22.0, 22.1, 22.2])
    clear = _arm([0.05, 0.051, 0.052], [0.20, 0.201, 0.202], [22.0, 22.1, 22.2])
    shown = verdict({"lia": lia, "vicoface": clear})
    assert shown["claim_shown"] and shown["mismatch_attr_error"]["met"]
    # A gain of 0.015 against a spread of 0.01 (twice: 0.02) is within noise.
    close = _arm([0.085, 0.095, 0.105], [0.20, 0.201, 0.202], [22.0, 22.1, 22.2])
    within = verdict({"lia": lia, "vicoface": close})
    assert not within["mismatch_attr_error"]["met"] and not within["claim_shown"]
    worse_psnr = _arm([0.05, 0.051, 0.052], [0.20, 0.201, 0.202], [21.0, 21.1, 21.2])
    assert not verdict({"lia": lia, "vicoface": worse_psnr})["cross_psnr"]["met"]


def test_plateau_stops_when_patience_evaluations_gain_too_little(tmp_path):
    study = StudyConfig(min_steps=1000, min_gain_db=0.1, eval_every=500, patience=2)
    plateau = Plateau(study, tmp_path / "curve.json", [])
    for step, psnr in [(0, 15.0), (250, 15.02), (500, 15.04)]:
        plateau.add(step, psnr)
    assert not plateau.reached  # flat, but before min_steps
    plateau.add(1000, 15.05)
    assert plateau.reached
    plateau.curve.clear()
    for step, psnr in [(0, 15.0), (500, 18.0), (1000, 18.3), (1500, 18.2)]:
        plateau.add(step, psnr)
    assert not plateau.reached  # one dip: the last two still beat the best before by 0.3
    plateau.add(2000, 18.35)
    assert plateau.reached and plateau.stopped_at == 2000  # 18.35 vs 18.3: 0.05 in 1000 steps
    resumed = Plateau.load(study, tmp_path / "curve.json", resumed_step=1000)
    assert [s for s, _ in resumed.curve] == [0, 500, 1000]


def test_arms_share_start_seed_steps_and_ablations_change_one_thing(tmp_path):
    study = StudyConfig()
    paths = StudyPaths(tmp_path)
    lia, vcf = (arm_config(study, paths, arm, 2) for arm in ("lia", "vicoface"))
    assert lia.init_checkpoint == vcf.init_checkpoint == vcf.teacher_checkpoint
    assert (lia.seed, lia.steps, lia.batch_size) == (vcf.seed, vcf.steps, vcf.batch_size)
    assert lia.stage == "self" and vcf.stage == "mixture" and vcf.cross_target == "pseudo"
    no_multi = ablation_config(study, paths, "no_multipath")
    assert no_multi.losses.cycle_l1 == 0 and no_multi.losses.cross_l1 == vcf.losses.cross_l1
    truth = ablation_config(study, paths, "ground_truth_target")
    assert truth.cross_target == "ground_truth" and truth.losses == vcf.losses
    with pytest.raises(ValueError, match="unknown ablations"):
        StudyConfig(ablations=("no_such",))


def test_nice_ticks_cover_the_range_with_round_steps():
    ticks = nice_ticks(0.031, 0.087)
    assert ticks[0] <= 0.031 and ticks[-1] >= 0.087
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1


@pytest.mark.slow
def test_a_tiny_study_runs_end_to_end_and_resumes(tmp_path, capsys):
    out, results = tmp_path / "runs", tmp_path / "results"
    argv = [
        "--out", str(out), "--results", str(results), "--variant", "t",
        "--max-steps", "4", "--min-steps", "2", "--eval-every", "2", "--stage2-steps", "2",
        "--seeds", "1", "2", "--ablations", "no_multipath", "--aux-steps", "2",
        "--judge-steps", "2", "--val-pairs", "4", "--test-pairs", "8", "--jobs", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((results / "study.json").read_text())
    assert report["command"].startswith("python -m training.experiments")
    assert report["machine"]["cpus"] >= 1 and report["versions"]["torch"]
    assert report["stage1"]["steps"] in (2, 4) and report["stage1"]["curve"][0][0] == 0
    assert set(report["arms"]) == {"lia", "vicoface"}
    assert set(report["arms"]["vicoface"]["seeds"]) == {"1", "2"}
    assert report["pairs"] == {**report["pairs"], "test": 8, "mismatch": 2}
    assert "no_multipath" in report["ablation_effects"]
    assert isinstance(report["verdict"]["claim_shown"], bool)
    for picture in report["pictures"]:
        assert (results / picture).stat().st_size > 0
    first_wall = report["seconds"]["study_wall"]
    assert "claim shown:" in capsys.readouterr().out
    # A second call trains nothing and scores the same runs.
    assert main(argv) == 0
    again = json.loads((results / "study.json").read_text())
    assert again["seconds"]["stage2_trained_this_call"] == 0
    assert again["arms"] == report["arms"] and again["seconds"]["study_wall"] > first_wall


def test_split_and_share_ablations_change_the_model_or_the_batch(tmp_path):
    from training.models import resolve_model_config

    study, paths = StudyConfig(), StudyPaths(tmp_path)
    five = ablation_config(study, paths, "preservable_5")
    assert five.model == "vicoface-32s-b5" and resolve_model_config(five.model).id_dim == 5
    assert resolve_model_config(five.model).motion_dim == 20
    share = ablation_config(study, paths, "cross_share_half")
    assert share.cross_share == 0.5 and share.model == "vicoface-32s"
    with pytest.raises(ValueError, match="ViCoFace"):
        resolve_model_config("lia-32s-b5")


def test_log_seconds_add_up_the_stretches_of_a_resumed_run(tmp_path):
    from training.study.runs import log_seconds

    log = tmp_path / "log.jsonl"
    times = [10.0, 20.0, 30.0, 5.0, 15.0]  # a resume after 30 s restarted the clock
    log.write_text("".join(json.dumps({"step": i, "time": t}) + "\n" for i, t in enumerate(times)))
    assert log_seconds(log) == 45.0
    assert log_seconds(tmp_path / "missing.jsonl") is None
