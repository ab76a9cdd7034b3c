"""Per-pair scores of a reenactment method on `CrossPairs`, and their summaries.

Every score is per pair (``[N]``), so the study can plot one arm against the
other pair by pair, average over the shape-mismatch subset, and take the
spread over seeds:

* ``psnr``, ``l1``, ``ssim``: against the exact ground truth;
* ``attr_error``: L1 over the ground truth's hair | torso | face-outline pixels
  (the evaluator's attribute error), and ``attr_<name>`` for each alone;
* ``identity_distance``: ``1 - cos`` between the judge network's embeddings of
  the output and of the avatar. The judge is an identity network trained
  apart from the one the ViCoFace arm's L_id uses (another seed, more
  identities), so an arm cannot score well by fitting its own loss network.

NaN marks a pair whose attribute mask is empty; summaries skip NaNs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.evaluate import Method
from training.metrics import l1_per_image, masked_l1_per_image, psnr_per_image, ssim_per_image
from training.study.pairs import CrossPairs

SUBSETS = ("all", "mismatch")


@torch.no_grad()
def score_pairs(
    method: Method, pairs: CrossPairs, judge: nn.Module, batch: int = 64
) -> dict[str, Tensor]:
    """Every per-pair score (see module doc) of ``method``, each ``[N]`` float."""
    parts: dict[str, list[Tensor]] = {}
    union = torch.stack(list(pairs.masks.values())).any(0)
    for rows in pairs.chunks(batch):
        output = method(pairs.avatar[rows], pairs.driver[rows])
        truth = pairs.truth[rows]
        scores = {
            "psnr": psnr_per_image(output, truth),
            "l1": l1_per_image(output, truth),
            "ssim": ssim_per_image(output, truth),
            "attr_error": masked_l1_per_image(output, truth, union[rows]),
            "identity_distance": identity_distance(judge, output, pairs.avatar[rows]),
        }
        for name, mask in pairs.masks.items():
            scores[f"attr_{name}"] = masked_l1_per_image(output, truth, mask[rows])
        for name, value in scores.items():
            parts.setdefault(name, []).append(value.float())
    return {name: torch.cat(values) for name, values in parts.items()}


def identity_distance(judge: nn.Module, output: Tensor, avatar: Tensor) -> Tensor:
    """``1 - cos(judge(output), judge(avatar))`` per image ``[B]``."""
    return 1.0 - F.cosine_similarity(judge(output), judge(avatar), dim=1)


def _nanmean(values: Tensor) -> float:
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if kept.numel() else math.nan


def summarise(per_pair: Mapping[str, Tensor], mismatch: Tensor) -> dict[str, dict[str, float]]:
    """``{"all": {score: mean}, "mismatch": {score: mean over the subset}}``."""
    return {
        "all": {name: _nanmean(v) for name, v in per_pair.items()},
        "mismatch": {name: _nanmean(v[mismatch]) for name, v in per_pair.items()},
    }


def seed_statistics(values: Sequence[float]) -> dict[str, float | list[float]]:
    """Mean and spread (sample standard deviation; 0 for one seed) of one figure over seeds."""
    if not values:
        raise ValueError("no values to summarise")
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "spread": spread, "values": list(values)}


def across_seeds(
    summaries: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float | list[float]]]]:
    """Per subset and score: `seed_statistics` over the seeds' summaries."""
    first = summaries[0]
    return {
        subset: {
            name: seed_statistics([s[subset][name] for s in summaries]) for name in first[subset]
        }
        for subset in first
    }


__all__ = [
    "SUBSETS",
    "across_seeds",
    "identity_distance",
    "score_pairs",
    "seed_statistics",
    "summarise",
]
