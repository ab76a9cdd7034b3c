"""``vicocam selfcheck``: the same inputs through every backend against torch, pass/fail."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.app.commands.model import backend_list
from pipeline.app.model_options import add_model_options, model_spec, open_weights
from pipeline.errors import UserError
from trt_engines.backends import BackendName

if TYPE_CHECKING:
    from trt_engines.engine import Engine
    from trt_engines.graph_export import GraphCase
    from trt_engines.selfcheck import EngineOpener

CHECKED_BACKENDS = (BackendName.ONNXRUNTIME, BackendName.TENSORRT)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "selfcheck",
        help="the same random inputs through every backend vs torch, pass/fail",
        description="Run both graphs of the model on every available backend and on torch with "
        "the same random inputs, compare (max abs <= 1e-4 for ONNX Runtime, 1e-3 for TensorRT "
        "FP32, raised to twice torch's own rounding floor where that is higher) and print a "
        "pass/fail table. Exit code 1 when any check fails.",
    )
    add_model_options(parser, device="cuda:0", backend=False, precision=None)
    parser.add_argument(
        "--backends", default=None,
        help=f"comma-separated, from {', '.join(CHECKED_BACKENDS)} (default: all available)",
    )  # fmt: skip
    parser.add_argument("--batches", default="1,3", help="batch sizes to compare")
    parser.set_defaults(handler=handle_selfcheck)


def handle_selfcheck(args: argparse.Namespace) -> int:
    return run_selfcheck(args)


def run_selfcheck(
    args: argparse.Namespace, openers: Mapping[str, EngineOpener] | None = None
) -> int:
    """``vicocam selfcheck``; ``openers`` (backend -> engine maker) replaces the built-in ones."""
    from trt_engines.model_graphs import model_cases
    from trt_engines.selfcheck import selfcheck
    from trt_engines.torch_engine import torch_threads

    batches = _batches(args.batches)
    reenactor, label = open_weights(model_spec(args))
    print(f"model: {label}")
    with (
        tempfile.TemporaryDirectory(prefix="vicocam-selfcheck-") as tmp,
        torch_threads(args.threads),
    ):
        chosen, skipped = (dict(openers), []) if openers is not None else _openers(args, Path(tmp))
        if not chosen:
            raise UserError("no backend to check: " + "; ".join(r for _, r in skipped))
        report = selfcheck(model_cases(reenactor), chosen, batches=batches, skipped=skipped)
    print(report.table())
    print("selfcheck " + ("passed" if report.passed else "FAILED"))
    return 0 if report.passed else 1


def _batches(text: str) -> list[int]:
    try:
        batches = [int(b) for b in text.split(",")]
    except ValueError:
        raise UserError(f"--batches must be comma-separated integers, got {text!r}") from None
    if not batches or min(batches) < 1:
        raise UserError(f"--batches must be >= 1, got {text!r}")
    return batches


def _openers(
    args: argparse.Namespace, tmp: Path
) -> tuple[dict[str, EngineOpener], list[tuple[str, str]]]:
    from trt_engines.registry import default_backends

    wanted = CHECKED_BACKENDS if args.backends is None else backend_list(
        args.backends, CHECKED_BACKENDS, "--backends"
    )  # fmt: skip
    makers = {"onnxruntime": _ort_opener, "tensorrt": _trt_opener}
    chosen, skipped = {}, []
    for backend in default_backends():
        if backend.name not in wanted:
            continue
        reasons = backend.probe()
        if reasons and args.backends is not None:
            raise UserError(f"backend {backend.name} cannot run here: {'; '.join(reasons)}")
        if reasons:
            skipped.append((backend.name, "; ".join(reasons)))
        else:
            chosen[backend.name] = makers[backend.name](args, tmp)
    return chosen, skipped


def _ort_opener(args: argparse.Namespace, tmp: Path) -> EngineOpener:
    from trt_engines.graph_export import prepare_onnx
    from trt_engines.ort_engine import OrtEngine, OrtOptions

    def open_ort(case: GraphCase) -> Engine:
        path = prepare_onnx(case, tmp / "onnxruntime")
        options = OrtOptions(intra_op_threads=args.threads)
        return OrtEngine(path, options=options, name="onnxruntime")

    return open_ort


def _trt_opener(args: argparse.Namespace, tmp: Path) -> EngineOpener:
    from trt_engines.cache import EngineCache
    from trt_engines.graph_export import prepare_onnx
    from trt_engines.profiles import BatchRange
    from trt_engines.trt_build import BuildOptions
    from trt_engines.trt_engine import TrtSource, open_trt_engine

    batch = BatchRange(1, 1, max(_batches(args.batches)))
    cache = EngineCache(cache_root(args.cache) / "tensorrt-selfcheck")

    def open_trt(case: GraphCase) -> Engine:
        path = prepare_onnx(case, tmp / "tensorrt")
        source = TrtSource(case.name, path, case.inputs, batch, BuildOptions("fp32-notf32"))
        return open_trt_engine(source, cache, args.device)

    return open_trt


def cache_root(cache: Path | None) -> Path:
    """``--cache``, else the user's cache folder (`trt_engines.bundle.default_cache_dir`)."""
    from trt_engines.bundle import default_cache_dir

    return cache or default_cache_dir()
