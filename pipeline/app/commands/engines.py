"""``vicocam engines build|export``: the model's ONNX graphs and TensorRT engines.

``build`` makes its TensorRT plans from `trt_engines.bundle.engine_sources`,
the recipe ``vicocam run`` and ``serve`` open their engines from (same
folder, graph names, precision, batch range), so they find the plans it
built: ``--max-batch N`` (default 4) matches ``serve --max-sessions N``, and
the default matches ``run``.

Exit codes: 0 all good, 1 a check failed, 2 something missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.app.model_options import add_model_options, model_spec, open_weights
from pipeline.app.options import add_deprecated, positive_int
from pipeline.errors import UserError
from trt_engines.backends import Precision

if TYPE_CHECKING:
    from networks.avatar import Reenactor
    from trt_engines.bundle import ModelSpec
    from trt_engines.graph_export import ExportReport, ExportStep


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    engines = subparsers.add_parser("engines", help="export ONNX graphs and build TensorRT engines")
    actions = engines.add_subparsers(dest="engines_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="export, check and build the TensorRT engines of a model",
        description="Export both graphs (opset 18, dynamic batch), fold constants, lint, check "
        "ONNX Runtime against PyTorch, convert to FP16 (--precision fp16), then build the "
        "TensorRT engines through the engine cache that 'vicocam run' and 'vicocam serve' "
        "reuse: the defaults (fp16, --max-batch 4) are theirs on CUDA; for 'serve "
        "--max-sessions N' build with --max-batch N. Without TensorRT the ONNX steps still "
        "run and the build stops with what to install.",
    )
    add_model_options(build, device="cuda:0", backend=False, precision=Precision.FP16)
    build.add_argument("--max-batch", type=positive_int, default=4,
                       help="largest batch of the engines: serve's --max-sessions (4)")
    build.set_defaults(handler=handle_engines_build)
    export = actions.add_parser(
        "export",
        help="export, fold, lint and check the ONNX graphs of a model (no GPU needed)",
        description="Write motion.onnx and generate.onnx (and .fp16.onnx with --precision "
        "fp16) to --out, after the same checks as 'engines build'.",
    )
    add_model_options(export, backend=False, precision=Precision.FP32)
    add_deprecated(export, "--fp16", "--precision fp16", "precision",
                   convert=lambda _: Precision.FP16.value, flag=True)
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument("--max-batch", type=positive_int, default=4, help="largest batch")
    export.set_defaults(handler=handle_engines_export)


def print_step(step: ExportStep) -> None:
    print(step.line(), flush=True)


def engine_folder(spec: ModelSpec, reenactor: Reenactor) -> Path:
    """Where the model's graphs and plans live: the folder `vicocam run` reuses."""
    from trt_engines.bundle import model_folder

    return model_folder(reenactor, spec.cache_dir)


def _export(args: argparse.Namespace, reenactor: Reenactor, out: Path) -> ExportReport:
    from trt_engines.graph_export import ExportOptions, export_graphs
    from trt_engines.model_graphs import model_cases
    from trt_engines.ort_engine import OrtOptions
    from trt_engines.torch_engine import torch_threads

    print(f"exporting to {out}")
    ort = OrtOptions(intra_op_threads=args.threads)
    options = ExportOptions(max_batch=args.max_batch, fp16=args.precision == Precision.FP16,
                            ort=ort)
    try:
        with torch_threads(args.threads):
            report = export_graphs(model_cases(reenactor), out, options, on_step=print_step)
    except (OSError, ValueError) as exc:
        raise UserError(f"export failed: {exc}") from None
    if not report.passed:
        print("ONNX Runtime does not match PyTorch (see the parity lines above)", file=sys.stderr)
    return report


def handle_engines_export(args: argparse.Namespace) -> int:
    reenactor, label = open_weights(model_spec(args, weights_only=True))
    print(f"model: {label}")
    report = _export(args, reenactor, args.out)
    return 0 if report.passed else 1


def handle_engines_build(args: argparse.Namespace) -> int:
    from trt_engines.registry import probe_tensorrt

    spec = model_spec(args, max_batch=args.max_batch)
    reenactor, label = open_weights(spec)
    print(f"model: {label}")
    folder = engine_folder(spec, reenactor)
    report = _export(args, reenactor, folder)
    if not report.passed:
        return 1
    reasons = probe_tensorrt()
    if reasons:
        raise UserError(
            f"the ONNX graphs are ready in {folder}, but TensorRT engines cannot be built "
            "on this machine:\n  - " + "\n  - ".join(reasons)
        )
    _build_engines(spec, reenactor)
    return 0


def _build_engines(spec: ModelSpec, reenactor: Reenactor) -> None:
    """The TensorRT plans of ``spec``, made as `vicocam run`/`serve` make their engines."""
    from trt_engines.backends import BackendName
    from trt_engines.bundle import engine_batch, engine_sources
    from trt_engines.registry import trt_cache, trt_source
    from trt_engines.trt_engine import prepare_plan

    batch = engine_batch(spec)
    for source in engine_sources(reenactor, spec, BackendName.TENSORRT):
        plan = prepare_plan(trt_source(source), trt_cache(source), spec.device)
        print(f"{source.name:<22} {source.trt_options.precision}, batch {batch.min}..{batch.max}: "
              f"{plan}")
    print(f"{_users(spec)} find these plans (with the same model options)")


def _users(spec: ModelSpec) -> str:
    """The commands whose engines have the keys of ``spec``'s plans."""
    from trt_engines.bundle import DEFAULT_MAX_BATCH

    flags = f" --device {spec.device}"
    if spec.resolved_precision is Precision.FP32:
        flags += " --precision fp32"
    users = [f"'vicocam serve{flags} --max-sessions {spec.max_batch}'"]
    if spec.max_batch == DEFAULT_MAX_BATCH:
        users.insert(0, f"'vicocam run{flags}'")
    return " and ".join(users)
