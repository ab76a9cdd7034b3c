"""The real graphs of the 64 px configurations: export, fold, lint and ORT parity.

The weights are `load_reenactor`'s random ones (seed 0, flows of a trained
model's size: `networks.random_init`), and the figure is the issue's: ORT vs
torch ``max abs <= 1e-4`` on every output. The export's gate would rise to
twice torch's own float32 rounding floor if that were higher (it is for
LIA's raw initialisation, see ``test_random_init``); here it must not need
to, and each check asserts so. The helpers are shared with
``test_graph_export_128`` and ``test_graph_export_256``.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from trt_engines.bundle import load_reenactor
from trt_engines.graph_export import ExportOptions, ExportReport, export_graphs
from trt_engines.model_graphs import model_cases
from trt_engines.onnx_export import lint_onnx
from trt_engines.ort_engine import OrtEngine

ISSUE_GATE = 1e-4
BATCHES = (1, 3)


def export_config(config: str, out: Path) -> tuple[ExportReport, int]:
    """Export ``config`` (random weights, seed 0) with the parity check at batch 1 and 3.

    Returns the report and the configuration's number of warped scales.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reenactor = load_reenactor(None, config, seed=0).reenactor
        report = export_graphs(model_cases(reenactor), out, ExportOptions(parity_batches=BATCHES))
    finally:
        torch.set_num_threads(previous)
    return report, reenactor.config.num_scales


def check_export(report: ExportReport, num_scales: int) -> None:
    """Every step ran and passed; files lint clean; opset 18; bilinear warps; dynamic batch."""
    assert [(s.graph, s.step) for s in report.steps] == [
        (g, step)
        for g in ("motion", "generate")
        for step in ("export", "simplify", "lint", "parity")
    ]
    assert all(s.ok for s in report.steps), report.table()
    for graph in report.graphs:
        assert lint_onnx(graph.onnx_path) == []
        model = onnx.load(str(graph.onnx_path))
        assert {(o.domain, o.version) for o in model.opset_import} == {("", 18)}
        modes = [
            a.s for n in model.graph.node if n.op_type == "GridSample" for a in n.attribute
            if a.name == "mode"
        ]  # fmt: skip
        assert modes == [b"bilinear"] * (num_scales if graph.name == "generate" else 0)
        with OrtEngine(graph.onnx_path) as engine:
            assert all(s.shape[0] is None for s in (*engine.inputs, *engine.outputs))


def check_parity(report: ExportReport) -> None:
    """ORT vs torch at batch 1 and 3 within 1e-4 on every output, with the gate not raised."""
    for graph in report.graphs:
        rows = graph.parity.rows
        assert sorted({r.batch for r in rows}) == list(BATCHES)
        assert 2 * graph.floor < ISSUE_GATE, f"{graph.name}: rounding floor {graph.floor:.2g}"
        assert graph.tolerance.max_abs == ISSUE_GATE
        assert graph.parity.passed, graph.parity.table()
        assert all(r.max_abs <= ISSUE_GATE for r in rows), graph.parity.table()


pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
]


@pytest.mark.parametrize("config", ["lia-64s", "vicoface-64s"])
def test_small_config_exports_lint_clean_and_matches_torch(config, tmp_path):
    report, num_scales = export_config(config, tmp_path)
    check_export(report, num_scales)
    check_parity(report)
