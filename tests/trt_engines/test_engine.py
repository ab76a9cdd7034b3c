"""Engine interface: spec validation, TorchEngine and OrtEngine parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.engine import Engine, TensorSpec, validate_feeds
from trt_engines.ort_engine import OrtEngine, OrtOptions
from trt_engines.parity import Comparator, Tolerance, random_feeds
from trt_engines.torch_engine import TorchEngine

SPECS = (
    TensorSpec("driver", (None, 3, 4, 4), torch.float32),
    TensorSpec("alpha", (None, 5), torch.float32),
)


def good_feeds(batch: int = 2) -> dict[str, torch.Tensor]:
    return {"driver": torch.zeros(batch, 3, 4, 4), "alpha": torch.zeros(batch, 5)}


def test_spec_describe_and_concrete():
    spec = SPECS[0]
    assert spec.describe() == "driver[?,3,4,4] float32"
    assert spec.concrete(3) == (3, 3, 4, 4)
    with pytest.raises(ValueError, match="dynamic non-batch"):
        TensorSpec("x", (None, None), torch.float32).concrete(1)
    with pytest.raises(ValueError, match="static batch"):
        TensorSpec("x", (1, 2), torch.float32).concrete(2)


def test_valid_feeds_pass_at_any_batch():
    validate_feeds(SPECS, good_feeds(1))
    validate_feeds(SPECS, good_feeds(7))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.pop("alpha"), r"missing input alpha\[\?,5\] float32"),
        (lambda f: f.update(extra=torch.zeros(1)), r"unexpected input 'extra'.*alpha, driver"),
        (
            lambda f: f.update(driver=torch.zeros(2, 3, 4)),
            r"'driver' has the wrong shape.*"
            r"driver\[\?,3,4,4\] float32, got shape \(2, 3, 4\)",
        ),
        (lambda f: f.update(driver=torch.zeros(2, 3, 4, 5)), r"'driver' has the wrong shape"),
        (
            lambda f: f.update(alpha=torch.zeros(2, 5, dtype=torch.float16)),
            r"'alpha' has the wrong dtype.*alpha\[\?,5\] float32.*float16",
        ),
        (lambda f: f.update(alpha=[0.0] * 5), r"'alpha' is a list"),
    ],
)
def test_invalid_feeds_name_the_tensor_and_spec(change, message):
    feeds = good_feeds()
    change(feeds)
    with pytest.raises(ValueError, match=message):
        validate_feeds(SPECS, feeds)


def test_all_problems_reported_at_once():
    feeds = {"driver": torch.zeros(2, 3, 4, 4, dtype=torch.float64), "bogus": torch.zeros(1)}
    with pytest.raises(ValueError) as info:
        validate_feeds(SPECS, feeds)
    text = str(info.value)
    assert "missing input alpha" in text and "'bogus'" in text and "wrong dtype" in text


def toy_torch_engine() -> TorchEngine:
    return TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device=torch.device("cpu"))


def test_torch_engine_runs_in_eval_inference_mode():
    engine = toy_torch_engine()
    assert isinstance(engine, Engine)
    out = engine.run(random_feeds(engine.inputs, 3))
    assert set(out) == {"image", "mask"}
    assert out["image"].shape == (3, 3, 16, 16) and out["mask"].shape == (3, 1, 16, 16)
    assert out["image"].is_inference() and not engine.module.training


def test_torch_engine_rejects_wrong_output_count():
    engine = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS[:1], device="cpu")
    with pytest.raises(RuntimeError, match=r"expected 1 tensor\(s\) named \['image'\]"):
        engine.run(random_feeds(INPUTS, 1))


def test_closed_engine_refuses_to_run():
    with toy_torch_engine() as engine:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        engine.run(random_feeds(INPUTS, 1))


def test_ort_engine_reads_specs_and_uses_explicit_providers(toy_folded: Path):
    with OrtEngine(toy_folded, options=OrtOptions(intra_op_threads=1)) as engine:
        assert engine.providers == ["CPUExecutionProvider"]
        assert engine.inputs == INPUTS
        assert engine.outputs == OUTPUTS


def test_ort_engine_from_bytes_validates_feeds(toy_folded: Path):
    with (
        OrtEngine(toy_folded.read_bytes(), name="bytes") as engine,
        pytest.raises(ValueError, match="missing input latent"),
    ):
        engine.run({"feat": torch.zeros(1, 4, 8, 8)})


def test_ort_outputs_share_memory_with_onnxruntime(toy_folded: Path):
    with OrtEngine(toy_folded) as engine:
        out = engine.run(random_feeds(INPUTS, 1))
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in out.values())


@pytest.mark.parametrize("graph", ["toy_onnx", "toy_folded"])
def test_torch_and_onnxruntime_agree_at_batch_1_and_3(graph: str, request):
    path = request.getfixturevalue(graph)
    with OrtEngine(path, options=OrtOptions(intra_op_threads=1)) as ort_engine:
        report = Comparator([toy_torch_engine(), ort_engine], Tolerance(max_abs=1e-4)).run((1, 3))
    assert report.passed, report.table()
    assert {r.batch for r in report.rows} == {1, 3}
    assert {r.output for r in report.rows} == {"image", "mask"}
