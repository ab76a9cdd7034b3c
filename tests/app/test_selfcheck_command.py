"""``vicocam selfcheck`` and the library behind it: engines under test come in through openers."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from pipeline.app.cli import build_parser, main
from pipeline.app.commands.selfcheck import run_selfcheck
from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.engine import Engine, EngineBase
from trt_engines.graph_export import GraphCase, prepare_onnx
from trt_engines.ort_engine import OrtEngine
from trt_engines.parity import Tolerance, above_floor, rounding_floor
from trt_engines.selfcheck import selfcheck, torch_reference

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
]


class Offset(EngineBase):
    """A deliberately broken engine: ``inner``'s outputs plus ``delta`` everywhere."""

    def __init__(self, inner: Engine, delta: float) -> None:
        super().__init__("offset", inner.inputs, inner.outputs)
        self.inner, self.delta = inner, delta

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v + self.delta for k, v in self.inner.run(feeds).items()}

    def close(self) -> None:
        self.inner.close()
        super().close()


def _toy_case() -> GraphCase:
    return GraphCase("toy", ToyGenerator(), INPUTS, OUTPUTS)


def _cannot_open(case: GraphCase) -> Engine:
    raise RuntimeError("device lost")


def test_selfcheck_passes_onnxruntime_and_fails_broken_engines(tmp_path: Path):
    openers = {
        "onnxruntime": lambda case: OrtEngine(prepare_onnx(case, tmp_path)),
        "offset": lambda case: Offset(torch_reference(case), 0.01),
        "unopenable": _cannot_open,
    }
    report = selfcheck([_toy_case()], openers, batches=(1, 2), skipped=[("tensorrt", "no GPU")])
    rows = {r.backend: r for r in report.rows}
    assert rows["onnxruntime"].passed and rows["onnxruntime"].max_abs <= 1e-4
    assert not rows["offset"].passed and rows["offset"].max_abs == pytest.approx(0.01, rel=1e-3)
    assert "max abs" in rows["offset"].detail
    assert not rows["unopenable"].passed and math.isinf(rows["unopenable"].max_abs)
    assert "RuntimeError: device lost" in rows["unopenable"].detail
    assert not report.passed
    table = report.table()
    assert "FAIL" in table and "skipped: no GPU" in table


def test_selfcheck_gates_are_per_backend():
    gates = {"offset": Tolerance(max_abs=0.1)}
    openers = {"offset": lambda case: Offset(torch_reference(case), 0.01)}
    assert selfcheck([_toy_case()], openers, gates=gates).passed
    assert not selfcheck([_toy_case()], openers).passed  # default gate 1e-4


def test_rounding_floor_is_one_rounding_of_the_inputs():
    class Identity(EngineBase):
        def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"y": feeds["x"].clone()}

    spec = INPUTS[1]
    engine = Identity(
        "identity", [spec.__class__("x", spec.shape)], [spec.__class__("y", spec.shape)]
    )
    x = torch.linspace(-4, 4, 12).reshape(2, 6)
    floor = rounding_floor(engine, {"x": x}, draws=2)["y"]
    assert 0 < floor <= 4 * 2.0**-24 * 1.0001
    assert above_floor(Tolerance(max_abs=1e-4), 1e-3).max_abs == 2e-3
    assert above_floor(Tolerance(max_abs=1e-4), 1e-6).max_abs == 1e-4


def _selfcheck_args(*extra: str):
    return build_parser().parse_args(["selfcheck", "--config", "vicoface-64s", *extra])


def test_selfcheck_command_exit_code_follows_the_table(capsys):
    broken = {"offset": lambda case: Offset(torch_reference(case), 0.05)}
    assert run_selfcheck(_selfcheck_args(), openers=broken) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if "offset" in line]
    assert len(failed) == 2 and all("FAIL" in line for line in failed)  # motion and generate
    assert "selfcheck FAILED" in out
    same = {"copy": torch_reference}
    assert run_selfcheck(_selfcheck_args(), openers=same) == 0
    assert "selfcheck passed" in capsys.readouterr().out


def test_selfcheck_runs_onnxruntime_on_the_real_graphs(capsys):
    assert main(["selfcheck", "--config", "vicoface-64s", "--backends", "onnxruntime"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if " onnxruntime " in line]
    assert [r[0] for r in rows] == ["motion", "generate"]
    assert all(r[-1] == "ok" for r in rows)


def test_selfcheck_refuses_a_requested_backend_that_cannot_run(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert main(["selfcheck", "--config", "vicoface-64s", "--backends", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'vicocam[trt]'" in err and "Traceback" not in err


def test_selfcheck_rejects_bad_batches(capsys):
    assert main(["selfcheck", "--config", "vicoface-64s", "--batches", "1,x"]) == 2
    assert "--batches" in capsys.readouterr().err
