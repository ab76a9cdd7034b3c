"""FP16-typed ONNX: closeness on CPU with ONNX Runtime, FP32 islands kept."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.onnx_export import lint_onnx
from trt_engines.ort_engine import OrtEngine, OrtOptions
from trt_engines.parity import Comparator, Tolerance
from trt_engines.torch_engine import TorchEngine

pytest.importorskip("onnxconverter_common")

from trt_engines.onnx_fp16 import convert_to_fp16

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
# The project's FP16 gate (TensorRT notes §6): images in [-1, 1].
FP16_GATE = Tolerance(max_abs=None, mean_abs=5e-3, min_psnr_db=35.0)


@pytest.fixture(scope="module")
def fp16_model(toy_folded: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    dst = tmp_path_factory.mktemp("fp16") / "toy.fp16.onnx"
    kept = convert_to_fp16(toy_folded, dst)
    return dst, kept


def elem_types(path: Path) -> dict[str, int]:
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    infos = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    types = {v.name: v.type.tensor_type.elem_type for v in infos}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def test_fp16_graph_stays_close_to_the_fp32_torch_reference(fp16_model):
    path, _ = fp16_model
    reference = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    with OrtEngine(path, options=OrtOptions(intra_op_threads=1)) as engine:
        report = Comparator([reference, engine], FP16_GATE).run((1, 3))
    assert report.passed, report.table()
    assert report.worst("image").max_abs > 1e-6  # it really computes in fp16


def test_io_stays_float32_and_lint_clean(fp16_model):
    path, _ = fp16_model
    with OrtEngine(path) as engine:
        assert engine.inputs == INPUTS and engine.outputs == OUTPUTS
    assert lint_onnx(path) == []


def test_convs_are_fp16_and_gridsample_flow_and_demod_are_fp32(fp16_model, toy_folded: Path):
    path, kept = fp16_model
    model = onnx.load(str(path))
    types = elem_types(path)
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and all(types[n.input[1]] == FLOAT16 for n in convs)
    (grid_sample,) = [n for n in model.graph.node if n.op_type == "GridSample"]
    assert [types[i] for i in grid_sample.input] == [FLOAT, FLOAT]
    source = onnx.load(str(toy_folded))
    producers = {o: n for n in source.graph.node for o in n.output}
    (src_gs,) = [n for n in source.graph.node if n.op_type == "GridSample"]
    grid_add = producers[src_gs.input[1]]
    flow_tanh = producers[producers[grid_add.input[1]].input[0]]
    assert {grid_add.name, flow_tanh.name} <= set(kept)
    sqrt = next(n for n in model.graph.node if n.op_type == "Sqrt")
    assert sqrt.name in kept and types[sqrt.output[0]] == FLOAT


def test_no_fp16_round_trips_between_fp32_nodes(fp16_model):
    # The styles feeding the demodulation must not pass through an fp16 cast.
    path, _ = fp16_model
    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    types = elem_types(path)
    for node in model.graph.node:
        if node.op_type == "Cast" and types[node.output[0]] == FLOAT:
            source = producers.get(node.input[0])
            assert source is None or source.op_type != "Cast", node.name
