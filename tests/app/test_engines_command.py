"""``vicocam engines export|build`` and `graph_export`, the step chain behind them."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from networks.checkpoint import save_checkpoint
from networks.config import get_config
from networks.generator import Generator
from pipeline.app.cli import main
from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.engine import TensorSpec
from trt_engines.graph_export import ExportOptions, ExportStep, GraphCase, export_graphs
from trt_engines.onnx_export import OnnxLintError, lint_onnx

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
]

STEPS = ["export", "simplify", "lint", "parity", "fp16"]


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_export_graphs_runs_and_reports_every_step(tmp_path: Path):
    seen: list[ExportStep] = []
    ticks = itertools.count()
    case = GraphCase("toy", ToyGenerator(), INPUTS, OUTPUTS)
    options = ExportOptions(fp16=True, parity_batches=(1, 2))
    report = export_graphs(
        [case], tmp_path, options, on_step=seen.append, clock=lambda: float(next(ticks))
    )
    assert [s.step for s in seen] == STEPS and report.steps == tuple(seen)
    assert all(s.ok and s.seconds == 1.0 for s in seen)  # one clock tick per step
    toy = report.graph("toy")
    assert toy.onnx_path == tmp_path / "toy.onnx" and lint_onnx(toy.onnx_path) == []
    assert toy.onnx_fp16_path == tmp_path / "toy.fp16.onnx" and toy.onnx_fp16_path.is_file()
    assert not (tmp_path / "toy.raw.onnx").exists()
    assert report.passed and {r.batch for r in toy.parity.rows} == {1, 2}
    assert "parity" in report.table() and "FAIL" not in report.table()


class NearestWarp(nn.Module):
    """Warps with nearest sampling, which the lint must refuse."""

    def forward(self, feat: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(feat, grid, mode="nearest", align_corners=False)


def test_a_lint_failure_stops_the_chain_and_is_reported(tmp_path: Path):
    case = GraphCase(
        "warp",
        NearestWarp(),
        (TensorSpec("feat", (None, 2, 4, 4)), TensorSpec("grid", (None, 4, 4, 2))),
        (TensorSpec("out", (None, 2, 4, 4)),),
    )
    seen: list[ExportStep] = []
    with pytest.raises(OnnxLintError, match="nearest"):
        export_graphs([case], tmp_path, on_step=seen.append)
    assert [(s.step, s.ok) for s in seen] == [("export", True), ("simplify", True), ("lint", False)]
    assert "nearest" in seen[-1].detail


def test_export_options_keep_parity_batches_in_the_profile():
    with pytest.raises(ValueError, match=r"1\.\.max_batch=2"):
        ExportOptions(max_batch=2, parity_batches=(1, 3))


def _step_lines(out: str) -> list[tuple[str, str, str]]:
    lines = [line.split() for line in out.splitlines()]
    return [(f[0], f[1], f[2]) for f in lines if len(f) > 2 and f[1] in STEPS]


def test_engines_build_exports_then_says_what_to_install(no_tensorrt, tmp_path: Path, capsys):
    code = main(["engines", "build", "--config", "lia-64s", "--precision", "fp16",
                 "--cache", str(tmp_path)])  # fmt: skip
    assert code == 2
    captured = capsys.readouterr()
    expected = [(g, s, "ok") for g in ("motion", "generate") for s in STEPS]
    assert _step_lines(captured.out) == expected
    assert "TensorRT" in captured.err and "pip install 'vicocam[trt]'" in captured.err
    assert "Traceback" not in captured.err
    (folder,) = (tmp_path / "onnx").iterdir()
    assert folder.name.startswith("lia-64s-") and str(folder) in captured.err
    names = {p.name for p in folder.iterdir()}
    assert names == {"motion.onnx", "generate.onnx", "motion.fp16.onnx", "generate.fp16.onnx"}


def test_engines_export_from_a_checkpoint(tmp_path: Path, capsys):
    torch.manual_seed(1)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, Generator(get_config("vicoface-64s")))
    out = tmp_path / "graphs"
    assert main(["engines", "export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"vicoface-64s from {checkpoint.name}" in text
    assert {p.name for p in out.iterdir()} == {"motion.onnx", "generate.onnx"}
    assert all(lint_onnx(p) == [] for p in out.iterdir())


def test_engines_export_reports_a_missing_checkpoint(tmp_path: Path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert main(["engines", "export", "--checkpoint", str(missing), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err


def test_engines_export_refuses_a_checkpoint_and_a_config_together(tmp_path: Path, capsys):
    argv = ["engines", "export", "--checkpoint", str(tmp_path / "m.safetensors"),
            "--config", "lia-64s", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "or --config" in capsys.readouterr().err
