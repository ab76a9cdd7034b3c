"""FP16-typed ONNX for strongly typed TensorRT engines.

Since TensorRT 10.12 (and only way in 11) FP16 is expressed in the graph
itself: the engine is built "strongly typed" from an ONNX whose tensors are
already float16 where we want FP16. This converts an FP32 graph with
onnxconverter-common while keeping the graph I/O float32 and keeping in FP32
what is cheap or precision-critical:

- ops by type: GridSample (an fp16 grid coordinate in (-1, 1) is only good to
  ~2^-11, a visible shift at 256 px), tanh/sigmoid heads, sqrt/reciprocal/div
  and the matmuls of the style path (the demodulation sums Cin*k*k squares and
  its 1e-8 epsilon is below fp16's smallest subnormal), reductions;
- nodes by shape: every node whose outputs are per-sample vectors (``[B, C]``
  or ``[B, C, 1, 1]``: styles, modulation scales, demodulation factors);
- the flow head: every node on the path into a GridSample's grid input, back
  to (not including) the convolution that produces the flow.

Convolutions over feature maps, where the time goes, become FP16.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from trt_engines.errors import require

log = logging.getLogger(__name__)

KEEP_FP32_OPS = (
    "GridSample",
    "Tanh",
    "Sigmoid",
    "Sqrt",
    "Reciprocal",
    "Pow",
    "Div",
    "MatMul",
    "Gemm",
    "ReduceSum",
    "ReduceMean",
    "ReduceSumSquare",
    "Softmax",
    "Exp",
    "Log",
)
CONV_OPS = ("Conv", "ConvTranspose")
CONVERTER_HINT = "pip install onnxconverter-common"


def convert_to_fp16(
    src: str | Path,
    dst: str | Path,
    *,
    keep_fp32_ops: Sequence[str] = KEEP_FP32_OPS,
    keep_fp32_nodes: Iterable[str] = (),
) -> list[str]:
    """Write an FP16 version of ``src`` to ``dst``; return the nodes kept in FP32.

    Graph inputs and outputs stay float32 (casts are inserted inside), so the
    engine's I/O specs do not change with the precision.
    """
    onnx = require("onnx", "pip install onnx")
    float16 = require("onnxconverter_common.float16", CONVERTER_HINT)
    model = onnx.load(str(src))
    blocked = sorted(set(fp32_nodes(model, keep_fp32_ops)) | set(keep_fp32_nodes))
    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops)),
        node_block_list=blocked,
    )
    _restore_float32_outputs(onnx, converted, {o.name for o in model.graph.output})
    # The converter leaves value_info entries for renamed tensors with stale types.
    del converted.graph.value_info[:]
    _drop_roundtrip_casts(onnx, converted)
    onnx.save(converted, str(dst))
    log.info("fp16: %s -> %s, %d nodes kept in fp32", Path(src).name, Path(dst).name, len(blocked))
    return blocked


def fp32_nodes(model: Any, keep_fp32_ops: Sequence[str] = KEEP_FP32_OPS) -> list[str]:
    """Names of the nodes `convert_to_fp16` keeps in FP32 (see the module docstring)."""
    _require_node_names(model)
    vectors = _per_sample_vector_nodes(model)
    flow = _flow_head_nodes(model)
    by_op = {n.name for n in model.graph.node if n.op_type in keep_fp32_ops}
    return sorted(vectors | flow | by_op)


def _restore_float32_outputs(onnx: Any, model: Any, float32_outputs: set[str]) -> None:
    """Cast back any graph output the converter left as float16.

    onnxconverter-common 1.16 ignores ``keep_io_types`` for an output whose
    producer is in the block list (it casts the fp32 result to fp16); the
    engine's output specs must not depend on the precision, so add a cast.
    """
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    for output in model.graph.output:
        tensor_type = output.type.tensor_type
        if output.name not in float32_outputs or tensor_type.elem_type != fp16:
            continue
        inner = f"{output.name}_fp16"
        for node in model.graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
            node.input[:] = [inner if i == output.name else i for i in node.input]
        cast = onnx.helper.make_node(
            "Cast", [inner], [output.name], to=fp32, name=f"{inner}_to_fp32"
        )
        model.graph.node.append(cast)
        tensor_type.elem_type = fp32


def _drop_roundtrip_casts(onnx: Any, model: Any) -> None:
    """Remove fp32 -> fp16 -> fp32 cast pairs between two FP32 nodes.

    The converter casts every blocked node's output to fp16 and back for the
    next blocked node, which would round the styles between the FP32 nodes of
    the demodulation path. Consumers of such a pair read the fp32 tensor.
    """
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    types = _elem_types(onnx, model)
    producers = {out: node for node in model.graph.node for out in node.output}
    graph_outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    for node in model.graph.node:
        first = producers.get(node.input[0]) if node.input else None
        if not (
            _is_cast_to(onnx, node, fp32)
            and first is not None
            and _is_cast_to(onnx, first, fp16)
            and types.get(first.input[0]) == fp32
        ):
            continue
        if node.output[0] in graph_outputs:  # keep the output's name: pass the fp32 through
            node.op_type, node.name = "Identity", f"{node.output[0]}_fp32"
            node.input[:] = [first.input[0]]
            del node.attribute[:]
        else:
            rename[node.output[0]] = first.input[0]
    for node in model.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    _remove_dead_casts(model, graph_outputs)


def _is_cast_to(onnx: Any, node: Any, elem_type: int) -> bool:
    if node.op_type != "Cast":
        return False
    return any(
        a.name == "to" and onnx.helper.get_attribute_value(a) == elem_type for a in node.attribute
    )


def _elem_types(onnx: Any, model: Any) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    types = {v.name: v.type.tensor_type.elem_type for v in infos}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def _remove_dead_casts(model: Any, graph_outputs: set[str]) -> None:
    while True:
        used = {i for n in model.graph.node for i in n.input} | graph_outputs
        dead = [n for n in model.graph.node if n.op_type == "Cast" and n.output[0] not in used]
        if not dead:
            return
        for node in dead:
            model.graph.node.remove(node)


def _require_node_names(model: Any) -> None:
    # The converter blocks nodes by name; unnamed nodes would be silently skipped.
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


def _per_sample_vector_nodes(model: Any) -> set[str]:
    onnx = require("onnx", "pip install onnx")
    inferred = onnx.shape_inference.infer_shapes(model)
    vector_names = {v.name for v in inferred.graph.value_info if _is_vector(v)}
    vector_names |= {v.name for v in inferred.graph.output if _is_vector(v)}
    return {
        n.name
        for n in model.graph.node
        if n.op_type not in CONV_OPS and n.output and all(o in vector_names for o in n.output)
    }


def _is_vector(value_info: Any) -> bool:
    """True for [B, C] and [B, C, 1, ..., 1] tensors with a known shape."""
    if not value_info.type.HasField("tensor_type"):
        return False
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return False
    dims = tensor_type.shape.dim
    trailing = dims[2:]
    return len(dims) >= 1 and all(d.HasField("dim_value") and d.dim_value == 1 for d in trailing)


def _flow_head_nodes(model: Any) -> set[str]:
    producers = {out: node for node in model.graph.node for out in node.output}
    keep: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "GridSample" and len(node.input) > 1:
            keep |= _ancestors_until_conv(node.input[1], producers)
    return keep


def _ancestors_until_conv(tensor: str, producers: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    pending = [tensor]
    while pending:
        node = producers.get(pending.pop())
        if node is None or node.name in found or node.op_type in CONV_OPS:
            continue
        found.add(node.name)
        pending.extend(node.input)
    return found
