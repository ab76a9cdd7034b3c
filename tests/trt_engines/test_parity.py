"""Comparator: seeded inputs, figures, and detection of a perturbed engine."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest
import torch

from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.engine import EngineBase
from trt_engines.parity import Comparator, Tolerance, compare_tensors, random_feeds
from trt_engines.torch_engine import TorchEngine


class PerturbedEngine(EngineBase):
    """Wraps an engine and adds ``delta`` to one output at one position."""

    def __init__(self, inner: TorchEngine, output: str, delta: float) -> None:
        super().__init__("perturbed", inner.inputs, inner.outputs)
        self.inner, self.output, self.delta = inner, output, delta

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(self.inner.run(feeds))
        bumped = out[self.output].clone()
        bumped.view(-1)[0] += self.delta
        out[self.output] = bumped
        return out


def reference() -> TorchEngine:
    return TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu", name="reference")


def test_random_feeds_are_seeded_and_follow_specs():
    a, b = random_feeds(INPUTS, 3, seed=5), random_feeds(INPUTS, 3, seed=5)
    c = random_feeds(INPUTS, 3, seed=6)
    assert a.keys() == {"feat", "latent"}
    assert a["feat"].shape == (3, 4, 8, 8) and a["latent"].dtype == torch.float32
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["feat"], c["feat"])


def test_identical_engines_pass_with_zero_error():
    report = Comparator([reference(), reference()]).run((1, 2))
    assert report.passed
    assert len(report.rows) == 4
    assert all(r.max_abs == 0 and math.isinf(r.psnr_db) for r in report.rows)


def test_perturbed_engine_is_caught_on_the_right_output():
    engines = [reference(), PerturbedEngine(reference(), "mask", 0.01)]
    report = Comparator(engines, Tolerance(max_abs=1e-3)).run((1, 3))
    assert not report.passed
    assert {r.output for r in report.failures()} == {"mask"}
    worst = report.worst("mask")
    assert worst.max_abs == pytest.approx(0.01, rel=1e-3)
    assert "max abs" in worst.failures[0] and "FAIL" in report.table()
    assert report.worst("image").passed


def test_per_output_tolerance_overrides_default():
    engines = [reference(), PerturbedEngine(reference(), "mask", 0.01)]
    loose = {"mask": Tolerance(max_abs=0.1)}
    assert Comparator(engines, Tolerance(max_abs=1e-3), per_output=loose).run().passed


def test_metrics_mean_and_psnr():
    ref = torch.zeros(4, 4)
    got = torch.zeros(4, 4)
    got[0, 0] = 0.4
    d = compare_tensors(ref, got, Tolerance(max_abs=None, mean_abs=0.02, min_psnr_db=40))
    assert d.max_abs == pytest.approx(0.4)
    assert d.mean_abs == pytest.approx(0.025)
    assert d.psnr_db == pytest.approx(10 * math.log10(4 / (0.16 / 16)))
    assert len(d.failures) == 2  # mean abs 0.025 > 0.02 and PSNR 26 dB < 40 dB


def test_nan_and_shape_mismatch_fail():
    nan = compare_tensors(torch.zeros(2), torch.tensor([0.0, float("nan")]), Tolerance())
    assert not nan.passed
    shape = compare_tensors(torch.zeros(2), torch.zeros(3), Tolerance())
    assert "shape" in shape.failures[0]


def test_missing_output_fails():
    class Partial(PerturbedEngine):
        def run(self, feeds):
            return {"image": self.inner.run(feeds)["image"]}

    report = Comparator([reference(), Partial(reference(), "mask", 0)]).run()
    assert [r.failures for r in report.failures()] == [("engine has no output 'mask'",)]


def test_needs_two_engines():
    with pytest.raises(ValueError, match="at least one other"):
        Comparator([reference()])
