"""ONNX export at opset 18, the TensorRT lint, and constant folding."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.onnx_export import (
    OnnxLintError,
    export_onnx,
    lint_onnx,
    require_clean_onnx,
    simplify_onnx,
    stored_max_batch,
)

OUTPUT_NAMES = [s.name for s in OUTPUTS]


def gridsample_modes(path: Path) -> list[str]:
    model = onnx.load(str(path))
    return [
        helper.get_attribute_value(a).decode()
        for n in model.graph.node
        if n.op_type == "GridSample"
        for a in n.attribute
        if a.name == "mode"
    ]


def test_export_writes_opset_18_bilinear_and_dynamic_batch(toy_onnx: Path):
    model = onnx.load(str(toy_onnx))
    assert [(i.domain, i.version) for i in model.opset_import] == [("", 18)]
    assert gridsample_modes(toy_onnx) == ["bilinear"]
    batch_dims = [i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input]
    assert batch_dims == ["batch", "batch"]
    assert [o.name for o in model.graph.output] == OUTPUT_NAMES
    assert stored_max_batch(toy_onnx) == 4


def test_lint_rejects_opset_20_export(tmp_path: Path):
    # torch writes GridSample-20's renamed mode ("linear"), which TensorRT reads as nearest.
    path = export_onnx(ToyGenerator(), INPUTS, OUTPUT_NAMES, tmp_path / "t20.onnx", opset=20)
    assert gridsample_modes(path) == ["linear"]
    problems = lint_onnx(path, check_folded=False)
    assert any("opset is 20, expected 18" in p for p in problems)
    assert any("mode 'linear'" in p for p in problems)
    with pytest.raises(OnnxLintError) as info:
        require_clean_onnx(path, check_folded=False)
    assert len(info.value.problems) == 2


def test_raw_export_has_an_unfolded_conv_weight_that_lint_reports(toy_onnx: Path):
    problems = lint_onnx(toy_onnx)
    assert len(problems) == 1 and "not an initializer" in problems[0]
    assert lint_onnx(toy_onnx, check_folded=False) == []


@pytest.mark.parametrize("method", ["onnx-graphsurgeon", "onnxruntime-basic"])
def test_simplify_folds_constants_and_keeps_outputs(toy_onnx: Path, tmp_path: Path, method):
    if method == "onnx-graphsurgeon":
        pytest.importorskip("onnx_graphsurgeon")
    dst = tmp_path / f"{method}.onnx"
    report = simplify_onnx(toy_onnx, dst, method=method)
    assert report.method == method
    assert report.nodes_after < report.nodes_before
    assert report.parity.passed and {r.batch for r in report.parity.rows} == {1, 2}
    assert lint_onnx(dst) == []


def test_simplify_auto_prefers_graphsurgeon(toy_onnx: Path, tmp_path: Path):
    pytest.importorskip("onnx_graphsurgeon")
    assert simplify_onnx(toy_onnx, tmp_path / "auto.onnx").method == "onnx-graphsurgeon"


def _tiny_model(path: Path, *, mode: str, grid_rank: int, domain: str = "") -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 1, 4, 4])
    grid = helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["b", *[4] * (grid_rank - 1)])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 1, 4, 4])
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], name="gs", mode=mode)
    nodes = [node]
    opsets = [helper.make_opsetid("", 18)]
    if domain:
        nodes.append(helper.make_node("Fancy", ["y"], ["z"], name="fancy", domain=domain))
        opsets.append(helper.make_opsetid(domain, 1))
        y = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["b", 1, 4, 4])
    graph = helper.make_graph(nodes, "g", [x, grid], [y])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_lint_flags_nearest_mode_and_rank_5_grid(tmp_path: Path):
    path = _tiny_model(tmp_path / "m.onnx", mode="nearest", grid_rank=5)
    problems = lint_onnx(path)
    assert any("mode 'nearest'" in p for p in problems)
    assert any("'grid' has rank 5" in p for p in problems)
    assert lint_onnx(_tiny_model(tmp_path / "ok.onnx", mode="bilinear", grid_rank=4)) == []


def test_lint_flags_custom_domains(tmp_path: Path):
    path = _tiny_model(tmp_path / "c.onnx", mode="bilinear", grid_rank=4, domain="com.acme")
    problems = lint_onnx(path)
    assert any("custom opset domain 'com.acme'" in p for p in problems)
    assert any("node 'fancy' (Fancy) uses custom domain" in p for p in problems)


def test_export_rejects_bad_max_batch(tmp_path: Path):
    with pytest.raises(ValueError, match="max_batch"):
        export_onnx(ToyGenerator(), INPUTS, OUTPUT_NAMES, tmp_path / "x.onnx", max_batch=0)
