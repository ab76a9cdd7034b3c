"""``vicocam doctor [--gpu] [--json PATH]``: what this machine has for vicocam, and the GPU check.

``--gpu`` on a machine with TensorRT and a CUDA GPU builds the TensorRT
engines, checks them against PyTorch and times each graph and whole frames;
with a CUDA GPU but no TensorRT it times the PyTorch engines on the GPU
instead and says what to install. All timing runs on CUDA streams of its own
(`trt_engines.streams`), never on the legacy default stream.

Exit codes: 0 all good, 1 a check failed (the table says which), 2 something
missing (a line saying what to install).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pipeline.app.commands.engines import engine_folder, print_step
from pipeline.app.model_options import add_model_options, model_spec, open_weights
from pipeline.app.options import add_json_option, positive_int, write_text
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from networks.avatar import Reenactor
    from trt_engines.bundle import ModelSpec
    from trt_engines.engine import Engine
    from trt_engines.graph_export import ExportReport, GraphCase

Figures = dict[str, Any]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="what this machine has for vicocam, and what to install",
        description="Report GPU, driver, CUDA, the torch CUDA build, TensorRT, ONNX Runtime "
        "providers, cameras and virtual-camera backends, with what to install for what is "
        "missing. --gpu (on a GPU machine) builds the TensorRT engines, checks them against "
        "PyTorch (FP32: max abs <= 1e-3; FP16: mean abs <= 5e-3 and PSNR >= 35 dB) and times "
        "each graph and whole frames with and without stream overlap, each on CUDA streams "
        "of its own; without TensorRT it times the PyTorch engines on the GPU instead.",
    )
    parser.add_argument("--gpu", action="store_true", help="run the GPU self-test")
    add_model_options(parser, device="cuda:0", backend=False, precision=None)
    parser.add_argument("--max-batch", type=positive_int, default=4, help="engine batch maximum")
    parser.add_argument("--frames", type=positive_int, default=200, help="frames per latency run")
    add_json_option(parser, "the report (with --gpu: and the GPU figures)")
    parser.set_defaults(handler=handle_doctor)


def handle_doctor(args: argparse.Namespace) -> int:
    from stages.endpoints import endpoint_report
    from trt_engines.doctor import system_report

    report, endpoints = system_report(), endpoint_report()
    print(report.format())
    print("\n".join(endpoints))
    figures: Figures = {"system": report.as_dict(), "endpoints": endpoints}
    try:
        return _gpu_doctor(args, figures) if args.gpu else 0
    except UserError as exc:
        figures["error"] = str(exc)
        raise
    finally:
        write_text(args.json, json.dumps(figures, indent=2, default=str))


def _gpu_doctor(args: argparse.Namespace, figures: Figures) -> int:
    from trt_engines.registry import probe_cuda, probe_tensorrt

    reasons = probe_tensorrt()
    if probe_cuda():
        raise UserError(
            "the GPU self-test needs TensorRT and a CUDA GPU; on this machine:\n  - "
            + "\n  - ".join(reasons)
        )
    spec = model_spec(args, max_batch=args.max_batch)
    reenactor, label = open_weights(spec)
    print(f"model: {label}")
    figures["model"] = label
    if reasons:
        return _without_tensorrt(args, reenactor, reasons, figures)
    return _gpu_selftest(args, spec, reenactor, figures)


def _gpu_selftest(args: argparse.Namespace, spec: ModelSpec, reenactor: Reenactor,
                  figures: Figures) -> int:
    import torch

    from trt_engines.bundle import engine_batch
    from trt_engines.doctor import SelfTestGraph, gpu_selftest
    from trt_engines.graph_export import ExportOptions, export_graphs
    from trt_engines.model_graphs import model_cases

    cases = model_cases(reenactor)
    folder = engine_folder(spec, reenactor) / "tensorrt-selftest"
    options = ExportOptions(max_batch=spec.max_batch, fp16=True)
    export = export_graphs(cases, folder.parent, options, on_step=print_step)
    device, batch = torch.device(args.device), engine_batch(spec)
    graphs = [
        SelfTestGraph(c.name, g.onnx_path, _cuda_reference(c, device), c.inputs, batch,
                      g.onnx_fp16_path, c.feeds)
        for c, g in zip(cases, export.graphs, strict=True)
    ]  # fmt: skip
    table = gpu_selftest(graphs, folder, device=device)
    print(table.format())
    figures["selftest"] = [asdict(row) for row in table.rows]
    with _closing(_trt_fp16_engines(cases, export, spec, folder, device)) as engines:
        figures["latency"] = _latency(cases, engines, device, args.frames, "TensorRT FP16")
    return 0 if table.passed else 1


def _without_tensorrt(args: argparse.Namespace, reenactor: Reenactor, reasons: list[str],
                      figures: Figures) -> int:
    """Time the PyTorch engines on the GPU; say what the TensorRT check needs."""
    import torch

    from trt_engines.model_graphs import model_cases

    print("TensorRT self-test skipped:\n  - " + "\n  - ".join(reasons))
    figures["tensorrt_skipped"] = reasons
    cases, device = model_cases(reenactor), torch.device(args.device)
    with _closing([_cuda_reference(c, device)() for c in cases]) as engines:
        figures["graphs_ms"] = _graph_times(cases, engines, device)
        figures["latency"] = _latency(cases, engines, device, args.frames, "PyTorch FP32")
    print("vicocam: the PyTorch engines ran on the GPU; for the TensorRT check install "
          "TensorRT and run 'vicocam doctor --gpu' again", file=sys.stderr)
    return 2


def _cuda_reference(case: GraphCase, device: torch.device) -> Callable[[], Engine]:
    from trt_engines.torch_engine import TorchEngine

    # A copy on the GPU: the original stays on the CPU for the reenactor that draws the inputs.
    return lambda: TorchEngine(
        copy.deepcopy(case.module), case.inputs, case.outputs, device=device, name="torch"
    )


@contextlib.contextmanager
def _closing(engines: Sequence[Engine]) -> Iterator[Sequence[Engine]]:
    try:
        yield engines
    finally:
        for engine in engines:
            engine.close()


def _graph_times(cases: Sequence[GraphCase], engines: Sequence[Engine],
                 device: torch.device) -> dict[str, float]:
    """Milliseconds per call of each graph at batch 1, on a stream of its own."""
    from trt_engines.doctor import BenchConfig, benchmark
    from trt_engines.graph_export import case_feeds
    from trt_engines.streams import make_stream

    times = {
        case.name: benchmark(engine, case_feeds(case, 1, 0), BenchConfig(), make_stream(device))
        for case, engine in zip(cases, engines, strict=True)
    }
    print("ms per call, batch 1: " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    return times


def _trt_fp16_engines(cases: Sequence[GraphCase], export: ExportReport, spec: ModelSpec,
                      folder: Path, device: torch.device) -> list[Engine]:
    """The FP16 engines the self-test built (found in its cache ``folder``)."""
    from trt_engines.bundle import engine_batch
    from trt_engines.cache import EngineCache
    from trt_engines.trt_build import BuildOptions
    from trt_engines.trt_engine import TrtSource, open_trt_engine

    return [
        open_trt_engine(
            TrtSource(c.name, g.onnx_fp16_path or g.onnx_path, c.inputs, engine_batch(spec),
                      BuildOptions("fp16-strong")),
            EngineCache(folder),
            device,
        )
        for c, g in zip(cases, export.graphs, strict=True)
    ]  # fmt: skip


def _latency(cases: Sequence[GraphCase], engines: Sequence[Engine], device: torch.device,
             frames: int, what: str) -> Figures:
    """Whole frames (motion then generate), sequential and overlapped; printed and returned."""
    from trt_engines.graph_export import case_feeds
    from trt_engines.latency import FrameInputs, frame_latency, latency_table

    driver = case_feeds(cases[0], 1, 0)["driver"].to(device)
    avatar = {k: v.to(device) for k, v in case_feeds(cases[1], 1, 0).items() if k != "alpha"}
    inputs = FrameInputs(driver, avatar)
    rows = [
        frame_latency(engines[0], engines[1], inputs, mode=mode, frames=frames)
        for mode in ("sequential", "overlapped")
    ]
    print(f"end-to-end, {what}, batch 1:\n" + latency_table(rows))
    return {"engines": what, "rows": [asdict(row) for row in rows]}
