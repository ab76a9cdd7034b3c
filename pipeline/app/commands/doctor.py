"""``vicocam doctor [--gpu]``: what this machine has for vicocam, and the GPU self-test.

Exit codes: 0 all good, 1 a check failed (the table says which), 2 something
missing (one line saying what to install).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.app.commands.engines import engine_folder, print_step
from pipeline.app.model_options import add_model_options, model_spec, open_weights
from pipeline.app.options import positive_int
from pipeline.errors import UserError

if TYPE_CHECKING:
    import torch

    from trt_engines.engine import Engine
    from trt_engines.graph_export import ExportReport, GraphCase


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="what this machine has for vicocam, and what to install",
        description="Report GPU, driver, CUDA, the torch CUDA build, TensorRT, ONNX Runtime "
        "providers, cameras and virtual-camera backends, with what to install for what is "
        "missing. --gpu (on a GPU machine) builds the TensorRT engines, checks them against "
        "PyTorch (FP32: max abs <= 1e-3; FP16: mean abs <= 5e-3 and PSNR >= 35 dB) and times "
        "each graph and whole frames with and without stream overlap.",
    )
    parser.add_argument("--gpu", action="store_true", help="run the GPU self-test")
    add_model_options(parser, device="cuda:0", backend=False, precision=None)
    parser.add_argument("--max-batch", type=positive_int, default=4, help="engine batch maximum")
    parser.add_argument("--frames", type=positive_int, default=200, help="frames per latency run")
    parser.set_defaults(handler=handle_doctor)


def handle_doctor(args: argparse.Namespace) -> int:
    from stages.endpoints import endpoint_report
    from trt_engines.doctor import system_report

    print(system_report().format())
    print("\n".join(endpoint_report()))
    return _gpu_doctor(args) if args.gpu else 0


def _gpu_doctor(args: argparse.Namespace) -> int:
    from trt_engines.registry import probe_tensorrt

    reasons = probe_tensorrt()
    if reasons:
        raise UserError(
            "the GPU self-test needs TensorRT and a CUDA GPU; on this machine:\n  - "
            + "\n  - ".join(reasons)
        )
    return _gpu_selftest(args)


def _gpu_selftest(args: argparse.Namespace) -> int:
    import torch

    from trt_engines.doctor import SelfTestGraph, gpu_selftest
    from trt_engines.graph_export import ExportOptions, export_graphs
    from trt_engines.model_graphs import model_cases
    from trt_engines.profiles import BatchRange

    spec = model_spec(args)
    reenactor, label = open_weights(spec)
    print(f"model: {label}")
    cases = model_cases(reenactor)
    folder = engine_folder(spec, reenactor)
    options = ExportOptions(max_batch=args.max_batch, fp16=True)
    export = export_graphs(cases, folder, options, on_step=print_step)
    device = torch.device(args.device)
    batch = BatchRange(1, 1, args.max_batch)
    graphs = [
        SelfTestGraph(c.name, g.onnx_path, _cuda_reference(c, device), c.inputs, batch,
                      g.onnx_fp16_path, c.feeds)
        for c, g in zip(cases, export.graphs, strict=True)
    ]  # fmt: skip
    table = gpu_selftest(graphs, folder / "tensorrt-selftest", device=device)
    print(table.format())
    print(_overlap_table(cases, export, folder / "tensorrt-selftest", device, args))
    return 0 if table.passed else 1


def _cuda_reference(case: GraphCase, device: torch.device) -> Callable[[], Engine]:
    from trt_engines.torch_engine import TorchEngine

    # A copy on the GPU: the original stays on the CPU for the reenactor that draws the inputs.
    return lambda: TorchEngine(
        copy.deepcopy(case.module), case.inputs, case.outputs, device=device, name="torch"
    )


def _overlap_table(
    cases: Sequence[GraphCase],
    export: ExportReport,
    cache_dir: Path,
    device: torch.device,
    args: argparse.Namespace,
) -> str:
    from trt_engines.cache import EngineCache
    from trt_engines.graph_export import case_feeds
    from trt_engines.latency import FrameInputs, frame_latency, latency_table
    from trt_engines.profiles import BatchRange
    from trt_engines.trt_build import BuildOptions
    from trt_engines.trt_engine import TrtSource, open_trt_engine

    batch = BatchRange(1, 1, args.max_batch)
    engines = [
        open_trt_engine(
            TrtSource(c.name, g.onnx_fp16_path or g.onnx_path, c.inputs, batch,
                      BuildOptions("fp16-strong")),
            EngineCache(cache_dir),
            device,
        )
        for c, g in zip(cases, export.graphs, strict=True)
    ]  # fmt: skip
    driver = case_feeds(cases[0], 1, 0)["driver"].to(device)
    avatar = {k: v.to(device) for k, v in case_feeds(cases[1], 1, 0).items() if k != "alpha"}
    inputs = FrameInputs(driver, avatar)
    try:
        figures = [
            frame_latency(engines[0], engines[1], inputs, mode=mode, frames=args.frames)
            for mode in ("sequential", "overlapped")
        ]
    finally:
        for engine in engines:
            engine.close()
    return "end-to-end, TensorRT FP16, batch 1:\n" + latency_table(figures)
