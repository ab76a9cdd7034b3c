"""The paper's claim, measured: ViCoFace against LIA from the same trained start.

``python -m training.experiments --out runs/study`` runs the whole study of
``training.study`` (stage 1 to its plateau, both stage-2 arms over several
seeds, the ablations, the scores on held-out identities) and writes
``study.json`` and its pictures to ``--results``. Every run resumes from
``--out``, so an interrupted study continues where it stopped.

The verdict (`verdict`): the ViCoFace arm must beat the LIA arm on the
shape-mismatch subset's attribute error and identity distance by more than
twice the seed spread (the larger of the two arms' sample standard
deviations), with cross PSNR on all pairs no worse than LIA's minus that
spread.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from networks.checkpoint import load_generator
from pipeline.provenance import machine_info
from training.config import TrainConfig
from training.evaluate import baseline_methods, cross_mode, model_method
from training.study.config import (
    ABLATIONS,
    ARMS,
    StudyConfig,
    StudyPaths,
    ablation_config,
    arm_config,
)
from training.study.figures import mismatch_grid, pair_scatter, stage1_curve
from training.study.pairs import CrossPairs, build_cross_pairs
from training.study.runs import (
    add_wall_time,
    final_checkpoint,
    load_judge,
    log_seconds,
    run_seconds,
    train_aux_networks,
    train_stage1,
    train_stage2,
)
from training.study.scores import (
    across_seeds,
    identity_distance,
    score_pairs,
    summarise,
)
from training.worldset import default_world

log = logging.getLogger(__name__)

CLAIM_SCORES = ("attr_error", "identity_distance")
"""Lower is better; the claim is about these on the shape-mismatch subset."""
GRID_ROWS = 8


def verdict(stats: dict[str, Any]) -> dict[str, Any]:
    """Did arm B beat arm A by more than twice the seed spread (see module doc)?"""
    lia, vcf = stats["lia"], stats["vicoface"]
    checks: dict[str, Any] = {}
    for score in CLAIM_SCORES:
        a, b = lia["mismatch"][score], vcf["mismatch"][score]
        bound = 2.0 * max(a["spread"], b["spread"])
        gain = a["mean"] - b["mean"]
        checks[f"mismatch_{score}"] = {
            "lia": a["mean"],
            "vicoface": b["mean"],
            "gain": gain,
            "twice_spread": bound,
            "met": gain > bound,
        }
    a, b = lia["all"]["psnr"], vcf["all"]["psnr"]
    spread = max(a["spread"], b["spread"])
    checks["cross_psnr"] = {
        "lia": a["mean"],
        "vicoface": b["mean"],
        "spread": spread,
        "met": b["mean"] >= a["mean"] - spread,
    }
    checks["claim_shown"] = all(c["met"] for c in checks.values())
    return checks


@dataclass(frozen=True)
class StudyRuns:
    """Every stage-2 run of the study: its directory and its recipe."""

    paths: StudyPaths
    configs: dict[Path, TrainConfig]

    @classmethod
    def plan(cls, study: StudyConfig, paths: StudyPaths) -> StudyRuns:
        configs = {
            paths.run(arm, seed): arm_config(study, paths, arm, seed)
            for arm in ARMS
            for seed in study.seeds
        }
        configs |= {
            paths.run(name, study.ablation_seed): ablation_config(study, paths, name)
            for name in study.ablations
        }
        return cls(paths, configs)

    def final(self, name: str, seed: int) -> Path:
        directory = self.paths.run(name, seed)
        return final_checkpoint(directory, self.configs[directory])


def _score_model(path: Path, pairs: CrossPairs, judge: torch.nn.Module) -> dict[str, Tensor]:
    generator = load_generator(path)
    return score_pairs(model_method(generator, cross_mode(generator)), pairs, judge)


def _references(
    paths: StudyPaths, test: CrossPairs, judge: torch.nn.Module
) -> dict[str, dict[str, dict[str, float]]]:
    """The trivial baselines, the stage-1 start, and the ground truth's own identity distance."""
    reference = {
        name: summarise(score_pairs(method, test, judge), test.mismatch)
        for name, method in baseline_methods().items()
    }
    stage1 = model_method(load_generator(paths.teacher), "absolute")
    reference["stage1"] = summarise(score_pairs(stage1, test, judge), test.mismatch)
    truth_id = identity_distance(judge, test.truth, test.avatar)
    reference["truth"] = {  # how far the ground truth itself is from the avatar
        "all": {"identity_distance": float(truth_id.mean())},
        "mismatch": {"identity_distance": float(truth_id[test.mismatch].mean())},
    }
    return reference


def _ablation_effects(
    ablations: dict[str, dict[str, Any]], reference: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Each ablation minus full arm B (same seed) on the figures the verdict reads."""
    figures = [("mismatch", s) for s in CLAIM_SCORES] + [("all", "psnr")]
    return {
        name: {
            f"{subset}_{score}": summary[subset][score] - reference[subset][score]
            for subset, score in figures
        }
        for name, summary in ablations.items()
    }


def _figures(
    results: Path,
    stage1: dict[str, Any],
    per_pair: dict[str, dict[int, dict[str, Tensor]]],
    test: CrossPairs,
    models: dict[str, Path],
) -> list[str]:
    written = [
        stage1_curve(
            results / "stage1_curve.png",
            stage1["curve"],
            stage1["steps"] if stage1["plateau_reached"] else None,
        )
    ]
    for score in CLAIM_SCORES:
        mean = {
            arm: torch.stack([s[score] for s in per_pair[arm].values()]).mean(0) for arm in ARMS
        }
        written.append(
            pair_scatter(
                results / f"pairs_{score}.png", mean["lia"], mean["vicoface"], test.mismatch, score
            )
        )
    rows = torch.argsort(test.shape_distance, descending=True)[:GRID_ROWS]
    outputs = []
    for arm in ARMS:
        generator = load_generator(models[arm])
        method = model_method(generator, cross_mode(generator))
        outputs.append(method(test.avatar[rows], test.driver[rows]))
    grid = results / "mismatch_grid.png"
    mismatch_grid(grid, [test.driver[rows], test.avatar[rows], *outputs, test.truth[rows]])
    return [str(p.name) for p in [*written, grid]]


@dataclass(frozen=True)
class Scores:
    """Per-pair scores of the arms' runs and the summaries the report is made of."""

    per_pair: dict[str, dict[int, dict[str, Tensor]]]
    summaries: dict[str, dict[int, dict[str, dict[str, float]]]]
    ablations: dict[str, dict[str, dict[str, float]]]

    @property
    def stats(self) -> dict[str, Any]:
        return {
            arm: across_seeds(list(by_seed.values())) for arm, by_seed in self.summaries.items()
        }


def score_runs(
    study: StudyConfig, runs: StudyRuns, test: CrossPairs, judge: torch.nn.Module
) -> Scores:
    """Score every arm's seed and every ablation on the test pairs."""
    per_pair = {
        arm: {seed: _score_model(runs.final(arm, seed), test, judge) for seed in study.seeds}
        for arm in ARMS
    }
    summaries = {
        arm: {seed: summarise(s, test.mismatch) for seed, s in by_seed.items()}
        for arm, by_seed in per_pair.items()
    }
    ablations = {
        name: summarise(_score_model(runs.final(name, study.ablation_seed), test, judge),
                        test.mismatch)
        for name in study.ablations
    }  # fmt: skip
    return Scores(per_pair, summaries, ablations)


def run_study(study: StudyConfig, out: Path, results: Path) -> dict[str, Any]:
    """Train what is missing under ``out``, score everything, draw the pictures in ``results``;
    returns the report (``main`` adds the provenance and writes ``study.json``)."""
    started = time.monotonic()
    torch.set_num_threads(study.jobs * study.threads)
    paths = StudyPaths(out)
    aux = train_aux_networks(study, paths)
    world = default_world()
    val = build_cross_pairs(world, "val", study.size, study.val_pairs)
    test = build_cross_pairs(world, "test", study.size, study.test_pairs, study.mismatch_share)
    stage1 = train_stage1(study, paths, val)
    runs = StudyRuns.plan(study, paths)
    trained = train_stage2(runs.configs, study.jobs, study.threads)
    judge = load_judge(paths)
    scores = score_runs(study, runs, test, judge)
    results.mkdir(parents=True, exist_ok=True)
    models = {arm: runs.final(arm, study.seeds[0]) for arm in ARMS}
    seconds = {
        "study_wall": round(add_wall_time(out, time.monotonic() - started), 1),
        "stage1_training": log_seconds(paths.stage1 / "log.jsonl"),
        "stage2_runs": {d.name: run_seconds(d) for d in runs.configs},
        "stage2_trained_this_call": len(trained),
    }
    return {
        "study": asdict(study), "aux_losses": aux, "stage1": stage1,
        "pairs": _pair_facts(test),
        "arms": {arm: {"seeds": {str(k): v for k, v in scores.summaries[arm].items()},
                       "stats": scores.stats[arm]} for arm in ARMS},
        "ablations": scores.ablations,
        "ablation_effects": _ablation_effects(scores.ablations,
                                              scores.summaries["vicoface"][study.ablation_seed]),
        "ablation_changes": {name: asdict(ABLATIONS[name]) for name in study.ablations},
        "reference": _references(paths, test, judge),
        "verdict": verdict(scores.stats),
        "pictures": _figures(results, stage1, scores.per_pair, test, models),
        "seconds": seconds,
    }  # fmt: skip


def _pair_facts(test: CrossPairs) -> dict[str, float | int]:
    return {
        "test": len(test),
        "mismatch": int(test.mismatch.sum()),
        "mismatch_min_shape_distance": float(test.shape_distance[test.mismatch].min()),
        "median_shape_distance": float(test.shape_distance.median()),
    }


_INT_OPTIONS = {
    "size": "image side of the trained models (32 or 64)",
    "max_steps": "stage 1 stops here at the latest",
    "min_steps": "stage 1 runs at least this long",
    "eval_every": "stage 1 scores the validation pairs every this many steps",
    "stage2_steps": "steps of every stage-2 run (arms and ablations)",
    "aux_steps": "training steps of the L_id / L_lmk networks",
    "judge_steps": "training steps of the identity judge",
    "val_pairs": "validation cross pairs (stage 1's stopping rule)",
    "test_pairs": "held-out test cross pairs scored",
    "jobs": "stage-2 runs trained at once",
    "threads": "threads of each stage-2 run",
}
"""`StudyConfig` fields that are plain integer options (``--max-steps`` ...), with their help."""


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, StudyConfig]:
    defaults = StudyConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/study"),
        help="where the runs are kept (resumed from)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/results/study"),
        help="where study.json and the pictures go",
    )
    for name, text in _INT_OPTIONS.items():
        default = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=default, help=f"{text} (default {default})")
    parser.add_argument(
        "--variant",
        default=defaults.variant,
        choices=("s", "t"),
        help="s: the study's small models; t: tiny ones, for tests",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(defaults.seeds),
        help="stage-2 seeds, each run by both arms; the first also seeds the ablations",
    )
    parser.add_argument(
        "--ablations",
        nargs="*",
        default=list(defaults.ablations),
        choices=sorted(ABLATIONS),
        metavar="NAME",
        help=f"arm-B ablations to run (none with no name): {sorted(ABLATIONS)}",
    )
    args = parser.parse_args(argv)
    study = StudyConfig(
        **{name: getattr(args, name) for name in _INT_OPTIONS},
        variant=args.variant,
        seeds=tuple(args.seeds),
        ablations=tuple(args.ablations),
        ablation_seed=args.seeds[0],
    )
    return args, study


def main(argv: list[str] | None = None) -> int:
    args, study = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = "python -m training.experiments " + shlex.join(sys.argv[1:] if argv is None else argv)
    load_before = machine_info().get("loadavg_1m")
    report = run_study(study, args.out, args.results)
    info = machine_info()
    record = {
        "command": command,
        "machine": info,
        "versions": info.get("versions"),
        "load": {"before": load_before, "after": info.get("loadavg_1m")},
        **report,
    }
    path = args.results / "study.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    for name, check in report["verdict"].items():
        if isinstance(check, dict):
            state = "met" if check["met"] else "NOT met"
            figures = ", ".join(f"{k} {v:.4g}" for k, v in check.items() if k != "met")
            print(f"{name}: {state} ({figures})")
    shown = report["verdict"]["claim_shown"]
    print(f"claim shown: {'yes' if shown else 'no'}; {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["run_study", "verdict"]
