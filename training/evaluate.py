"""Evaluation against exact ground truth on held-out synthetic identities.

Two tasks, each over `EvalBatch` items (avatar, driver, ground truth, mask):

* self: the driver is another frame of the avatar's identity; the truth is
  that frame. The model runs in absolute mode (LIA's evaluation).
* cross: the driver is another identity; the truth is the renderer's
  render(avatar identity, driver motion). ViCoFace runs in cross mode
  (``[a_drv ; b_src]``), LIA in absolute mode (its only option).

Per task: L1 (in [0, 1] units), PSNR (mean of per-image dB), SSIM
(Gaussian window) and the attribute error: L1 over the ground truth's hair,
torso and face-outline pixels, i.e. what reenactment must preserve. Two
trivial baselines go through the same metrics: the avatar unchanged, and the
driver frame itself (cross only: in self-reenactment the driver is the truth).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from networks.generator import Generator
from networks.motion import MotionMode
from training.metrics import (
    l1_per_image,
    masked_l1_per_image,
    psnr_per_image,
    ssim_per_image,
)
from training.samples import save_sample_grid

Method = Callable[[Tensor, Tensor], Tensor]
"""``(avatar [B,3,S,S], driver [B,3,S,S]) -> output [B,3,S,S]``, all in [-1, 1]."""


@dataclass(frozen=True)
class EvalBatch:
    """Images ``[B, 3, S, S]`` in [-1, 1] and the attribute mask ``[B, 1, S, S]`` bool."""

    avatar: Tensor
    driver: Tensor
    truth: Tensor
    attr_mask: Tensor


@dataclass
class MetricSums:
    """Running sums of per-image metrics (NaN attribute errors are skipped)."""

    count: int = 0
    l1: float = 0.0
    psnr: float = 0.0
    ssim: float = 0.0
    attr: float = 0.0
    attr_count: int = 0
    inf_psnr: int = 0

    def add(self, output: Tensor, batch: EvalBatch) -> None:
        psnr = psnr_per_image(output, batch.truth)
        finite = torch.isfinite(psnr)
        attr = masked_l1_per_image(output, batch.truth, batch.attr_mask)
        valid = ~torch.isnan(attr)
        self.count += int(output.shape[0])
        self.l1 += float(l1_per_image(output, batch.truth).sum())
        self.psnr += float(psnr[finite].sum())
        self.inf_psnr += int((~finite).sum())
        self.ssim += float(ssim_per_image(output, batch.truth).sum())
        self.attr += float(attr[valid].sum())
        self.attr_count += int(valid.sum())

    def means(self) -> dict[str, float]:
        """``{"l1", "psnr", "ssim", "attr_error"}``; PSNR is inf if any image is exact."""
        n = max(self.count, 1)
        finite = self.count - self.inf_psnr
        psnr = math.inf if self.inf_psnr else self.psnr / max(finite, 1)
        attr = self.attr / self.attr_count if self.attr_count else math.nan
        return {"l1": self.l1 / n, "psnr": psnr, "ssim": self.ssim / n, "attr_error": attr}


@dataclass
class EvalReport:
    """Metrics per (task, method): ``results[task][method] = {"l1", "psnr", ...}``."""

    results: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    identities_heldout: int = 0

    def flat(self) -> dict[str, float | int]:
        """The flat keys of ``vicocam eval --json``."""
        model_self = self.results["self"]["model"]
        cross = self.results["cross"]
        return {
            "self_psnr": model_self["psnr"],
            "self_l1": model_self["l1"],
            "self_ssim": model_self["ssim"],
            "cross_psnr": cross["model"]["psnr"],
            "cross_l1": cross["model"]["l1"],
            "cross_ssim": cross["model"]["ssim"],
            "attr_error": cross["model"]["attr_error"],
            "baseline_avatar_psnr": cross["avatar"]["psnr"],
            "baseline_driver_psnr": cross["driver"]["psnr"],
            "baseline_avatar_attr_error": cross["avatar"]["attr_error"],
            "baseline_driver_attr_error": cross["driver"]["attr_error"],
            "identities_heldout": self.identities_heldout,
        }

    def markdown(self) -> str:
        """One table: rows = task x method, columns = metrics."""
        lines = [
            "| task | method | L1 | PSNR (dB) | SSIM | attribute L1 |",
            "|---|---|---|---|---|---|",
        ]
        for task, methods in self.results.items():
            for method, m in methods.items():
                lines.append(
                    f"| {task} | {method} | {m['l1']:.4f} | {m['psnr']:.2f} |"
                    f" {m['ssim']:.4f} | {m['attr_error']:.4f} |"
                )
        lines.append(f"\nHeld-out identities: {self.identities_heldout}.")
        return "\n".join(lines) + "\n"


def baseline_methods() -> dict[str, Method]:
    """The trivial baselines: keep the avatar, or copy the driver."""
    return {"avatar": lambda avatar, driver: avatar, "driver": lambda avatar, driver: driver}


def model_method(generator: Generator, mode: MotionMode | str) -> Method:
    """The generator in ``mode`` (absolute for self, cross for ViCoFace cross), no grad."""
    generator.eval()

    def run(avatar: Tensor, driver: Tensor) -> Tensor:
        with torch.no_grad():
            out: Tensor = generator(avatar, driver, mode=mode)
        return out

    return run


def cross_mode(generator: Generator) -> MotionMode:
    """Cross-subject mode for ViCoFace; absolute (the only one) for LIA."""
    return MotionMode.CROSS if generator.config.id_dim > 0 else MotionMode.ABSOLUTE


def evaluate_task(methods: Mapping[str, Method], batches: Iterable[EvalBatch]) -> dict[str, Any]:
    """Metric means per method over all batches."""
    sums = {name: MetricSums() for name in methods}
    for batch in batches:
        for name, method in methods.items():
            sums[name].add(method(batch.avatar, batch.driver), batch)
    return {name: s.means() for name, s in sums.items()}


def evaluate_generator(
    generator: Generator,
    self_batches: Iterable[EvalBatch],
    cross_batches: Iterable[EvalBatch],
    identities_heldout: int,
) -> EvalReport:
    """Model + baselines on both tasks."""
    report = EvalReport(identities_heldout=identities_heldout)
    # In self-reenactment the driver frame IS the ground truth: only the avatar baseline.
    avatar_only = {"avatar": baseline_methods()["avatar"]}
    self_methods = {"model": model_method(generator, MotionMode.ABSOLUTE), **avatar_only}
    cross_methods = {"model": model_method(generator, cross_mode(generator)), **baseline_methods()}
    report.results["self"] = evaluate_task(self_methods, self_batches)
    report.results["cross"] = evaluate_task(cross_methods, cross_batches)
    return report


def save_eval_grid(path: str | Path, generator: Generator, batch: EvalBatch, rows: int = 6) -> None:
    """PNG: driver | avatar | output | ground truth, one row per sample."""
    n = min(rows, batch.avatar.shape[0])
    output = model_method(generator, cross_mode(generator))(batch.avatar[:n], batch.driver[:n])
    save_sample_grid(path, [[batch.driver[:n], batch.avatar[:n], output, batch.truth[:n]]])


def write_report(report: EvalReport, markdown: Path | None, json_path: Path | None) -> None:
    """Markdown table and / or the flat JSON (inf / nan written as strings)."""
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(report.markdown())
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        flat = {k: _json_number(v) for k, v in report.flat().items()}
        json_path.write_text(json.dumps(flat, indent=2) + "\n")


def _json_number(value: float | int) -> float | int | str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


__all__ = [
    "EvalBatch",
    "EvalReport",
    "Method",
    "MetricSums",
    "baseline_methods",
    "cross_mode",
    "evaluate_generator",
    "evaluate_task",
    "model_method",
    "save_eval_grid",
    "write_report",
]
