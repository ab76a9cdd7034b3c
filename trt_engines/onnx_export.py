"""ONNX export, lint and constant folding for TensorRT-bound graphs.

The recipe (see the TensorRT notes): the TorchScript exporter (``dynamo=False``,
no onnxscript needed) at **opset 18** with a dynamic batch axis. Opset 20 (the
torch default) writes GridSample's mode as ``"linear"``, which the TensorRT
parser does not know and silently turns into nearest sampling, so `lint_onnx`
refuses any default-domain opset other than 18. The export leaves some
constant subgraphs (e.g. a blur kernel flipped at run time) that TensorRT would
see as dynamic-weight convolutions; `simplify_onnx` folds them and checks with
ONNX Runtime that the outputs did not change.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trt_engines.engine import TensorSpec
from trt_engines.errors import require
from trt_engines.parity import Comparator, FeedMaker, ParityReport, Tolerance, random_feeds

log = logging.getLogger(__name__)

TRT_OPSET = 18
DEFAULT_DOMAINS = ("", "ai.onnx")
MAX_BATCH_KEY = "vicocam.max_batch"


class OnnxLintError(ValueError):
    """An ONNX graph that TensorRT would mis-parse; ``problems`` lists all of them."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{path} failed the ONNX lint:\n  " + "\n  ".join(self.problems))


def _onnx() -> Any:
    return require("onnx", "pip install onnx")


# --------------------------------------------------------------------------- export


def export_onnx(
    module: nn.Module,
    input_specs: Sequence[TensorSpec],
    output_names: Sequence[str],
    path: str | Path,
    *,
    opset: int = TRT_OPSET,
    max_batch: int = 4,
    seed: int = 0,
) -> Path:
    """Export ``module`` (forward takes the inputs in spec order) to ``path``.

    Every input whose spec has a dynamic first dim, and every output, gets a
    dynamic ``batch`` axis. The trace runs at batch ``min(2, max_batch)`` so
    that no size-1 broadcast gets baked in. ``max_batch`` is stored in the
    model metadata (``vicocam.max_batch``) as the intended profile maximum.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = random_feeds(input_specs, min(2, max_batch), seed)
    args = tuple(example[s.name] for s in input_specs)
    dynamic = {s.name: {0: "batch"} for s in input_specs if s.shape and s.shape[0] is None}
    if dynamic:
        dynamic.update({name: {0: "batch"} for name in output_names})
    _torchscript_export(module.eval(), args, input_specs, output_names, path, opset, dynamic)
    _stamp_max_batch(path, max_batch)
    return path


def _torchscript_export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    input_specs: Sequence[TensorSpec],
    output_names: Sequence[str],
    path: Path,
    opset: int,
    dynamic: dict[str, dict[int, str]],
) -> None:
    # The legacy exporter is chosen on purpose (recipe A: dynamic batch without
    # onnxscript); its deprecation warnings are noise for our callers.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[s.name for s in input_specs],
            output_names=list(output_names),
            dynamic_axes=dynamic or None,
        )


def _stamp_max_batch(path: Path, max_batch: int) -> None:
    onnx = _onnx()
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {MAX_BATCH_KEY: str(max_batch)})
    onnx.save(model, str(path))


def stored_max_batch(path: str | Path) -> int | None:
    """The ``max_batch`` recorded by `export_onnx`, or ``None``."""
    model = _onnx().load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return int(props[MAX_BATCH_KEY]) if MAX_BATCH_KEY in props else None


# --------------------------------------------------------------------------- lint


def lint_onnx(path: str | Path, *, opset: int = TRT_OPSET, check_folded: bool = True) -> list[str]:
    """Every reason TensorRT would reject or mis-read the graph; ``[]`` if clean.

    Checks: ``onnx.checker``; default-domain opset == ``opset``; no custom
    domains; every GridSample is ``mode="bilinear"`` on rank-4 inputs; and
    (``check_folded``) every Conv/ConvTranspose weight is an initializer.
    """
    onnx = _onnx()
    problems = _checker_problems(onnx, Path(path))
    model = onnx.load(str(path), load_external_data=False)
    problems += _opset_problems(model, opset)
    problems += _gridsample_problems(onnx, model)
    if check_folded:
        problems += _weight_problems(model)
    return problems


def require_clean_onnx(
    path: str | Path, *, opset: int = TRT_OPSET, check_folded: bool = True
) -> None:
    """Raise `OnnxLintError` listing every problem `lint_onnx` finds."""
    problems = lint_onnx(path, opset=opset, check_folded=check_folded)
    if problems:
        raise OnnxLintError(Path(path), problems)


def _checker_problems(onnx: Any, path: Path) -> list[str]:
    try:
        onnx.checker.check_model(str(path))  # path form also handles external data
    except onnx.checker.ValidationError as exc:
        return [f"onnx.checker: {exc}"]
    return []


def _opset_problems(model: Any, opset: int) -> list[str]:
    problems = []
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS and imp.version != opset:
            problems.append(
                f"default-domain opset is {imp.version}, expected {opset} "
                f"(re-export with opset={opset}; opset 20 GridSample mode 'linear' "
                "is read as nearest by TensorRT)"
            )
        elif imp.domain not in DEFAULT_DOMAINS:
            problems.append(f"custom opset domain {imp.domain!r} imported (TensorRT needs plugins)")
    for node in model.graph.node:
        if node.domain not in DEFAULT_DOMAINS:
            problems.append(
                f"node {node.name!r} ({node.op_type}) uses custom domain {node.domain!r}"
            )
    return problems


def _gridsample_problems(onnx: Any, model: Any) -> list[str]:
    ranks = _tensor_ranks(onnx, model)
    problems = []
    for node in model.graph.node:
        if node.op_type != "GridSample":
            continue
        mode = _string_attr(onnx, node, "mode", default="bilinear")
        if mode != "bilinear":
            problems.append(f"GridSample {node.name!r} has mode {mode!r}, expected 'bilinear'")
        for name in node.input[:2]:
            if ranks.get(name) != 4:
                problems.append(
                    f"GridSample {node.name!r} input {name!r} has rank {ranks.get(name)}, "
                    "TensorRT supports rank 4 only"
                )
    return problems


def _tensor_ranks(onnx: Any, model: Any) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in infos
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")
    }
    ranks.update({t.name: len(t.dims) for t in model.graph.initializer})
    return ranks


def _string_attr(onnx: Any, node: Any, name: str, default: str) -> str:
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else str(value)
    return default


def _weight_problems(model: Any) -> list[str]:
    initializers = {t.name for t in model.graph.initializer}
    return [
        f"{node.op_type} {node.name!r} weight {node.input[1]!r} is computed, not an initializer "
        "(run simplify_onnx to fold constants)"
        for node in model.graph.node
        if node.op_type in ("Conv", "ConvTranspose") and node.input[1] not in initializers
    ]


# --------------------------------------------------------------------------- simplify


@dataclass(frozen=True)
class SimplifyReport:
    """What `simplify_onnx` did.

    Attributes:
        method: ``"onnx-graphsurgeon"`` or ``"onnxruntime-basic"``.
        nodes_before / nodes_after: node counts of the graph.
        parity: ONNX Runtime outputs of the source vs the simplified graph.
    """

    method: str
    nodes_before: int
    nodes_after: int
    parity: ParityReport


def simplify_onnx(
    src: str | Path,
    dst: str | Path,
    *,
    method: str = "auto",
    check_batches: Sequence[int] = (1, 2),
    tolerance: Tolerance | None = None,
    feeds: FeedMaker | None = None,
) -> SimplifyReport:
    """Fold constants in ``src`` into ``dst`` and check both give equal outputs.

    ``method="auto"`` uses onnx-graphsurgeon's ``fold_constants`` + ``cleanup``
    when it is installed, else ONNX Runtime's offline optimizer at the basic
    level (standard-ONNX rewrites only). Raises `ValueError` if ONNX Runtime
    outputs before and after differ beyond ``tolerance`` (default max abs 1e-5:
    folding may only reorder float rounding). ``feeds`` draws the check's
    inputs (default: uniform random per input, see `parity.Comparator`).
    """
    src, dst = Path(src), Path(dst)
    chosen = _choose_method(method)
    before = _node_count(src)
    (_fold_graphsurgeon if chosen == "onnx-graphsurgeon" else _fold_onnxruntime)(src, dst)
    parity = _ort_parity(src, dst, check_batches, tolerance or Tolerance(max_abs=1e-5), feeds)
    report = SimplifyReport(chosen, before, _node_count(dst), parity)
    log.info("simplified %s with %s: %d -> %d nodes", src.name, chosen, before, report.nodes_after)
    if not parity.passed:
        raise ValueError(f"simplifying {src} changed its outputs:\n{parity.table()}")
    return report


def _choose_method(method: str) -> str:
    if method == "auto":
        try:
            require("onnx_graphsurgeon", "")
            return "onnx-graphsurgeon"
        except ImportError:
            return "onnxruntime-basic"
    if method not in ("onnx-graphsurgeon", "onnxruntime-basic"):
        raise ValueError(
            f"method must be auto, onnx-graphsurgeon or onnxruntime-basic, got {method!r}"
        )
    return method


def _node_count(path: Path) -> int:
    return len(_onnx().load(str(path), load_external_data=False).graph.node)


def _fold_graphsurgeon(src: Path, dst: Path) -> None:
    onnx = _onnx()
    gs = require("onnx_graphsurgeon", "pip install onnx-graphsurgeon")
    graph = gs.import_onnx(onnx.load(str(src)))
    graph.fold_constants().cleanup().toposort()
    onnx.save(gs.export_onnx(graph), str(dst))


def _fold_onnxruntime(src: Path, dst: Path) -> None:
    ort = require("onnxruntime", "pip install onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    _drop_unused_opsets(dst)


def _drop_unused_opsets(path: Path) -> None:
    # ORT's writer imports every domain it knows (com.microsoft, ...), used or
    # not; keep only those the nodes use so the lint's custom-domain rule holds.
    onnx = _onnx()
    model = onnx.load(str(path))
    used = {n.domain for n in model.graph.node} | {""}
    keep = [imp for imp in model.opset_import if imp.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    onnx.save(model, str(path))


def _ort_parity(
    src: Path, dst: Path, batches: Sequence[int], tolerance: Tolerance, feeds: FeedMaker | None
) -> ParityReport:
    from trt_engines.ort_engine import OrtEngine, OrtOptions

    # Optimizations off, one thread: compare the graphs, not ORT's rewrites.
    options = OrtOptions(intra_op_threads=1, graph_optimization="disabled")
    with (
        OrtEngine(src, options=options, name="source") as a,
        OrtEngine(dst, options=options, name="simplified") as b,
    ):
        return Comparator([a, b], tolerance, feeds=feeds).run(batches)
