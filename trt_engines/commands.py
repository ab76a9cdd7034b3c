"""``vicocam model info``, ``selfcheck``, ``doctor`` and ``engines build|export``.

Thin handlers over library code: `benchmarks.model` (sizes and CPU timings),
`trt_engines.graph_export` (export, fold, lint, parity, FP16),
`trt_engines.selfcheck` (every backend against torch), `trt_engines.doctor`
(what this machine has; the GPU self-test) and `trt_engines.latency`.
Nothing heavy is imported until a handler runs.

Exit codes: 0 all good, 1 a check failed (the table says which), 2 a
usage problem or something missing (one line saying what to do).
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserError

if TYPE_CHECKING:
    import torch

    from networks.avatar import Reenactor
    from trt_engines.engine import Engine
    from trt_engines.graph_export import ExportReport, ExportStep, GraphCase
    from trt_engines.selfcheck import EngineOpener

CPU_BACKENDS = ("torch", "onnxruntime")
CHECKED_BACKENDS = ("onnxruntime", "tensorrt")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_model(subparsers)
    _register_selfcheck(subparsers)
    _register_doctor(subparsers)
    _register_engines(subparsers)


# ---------------------------------------------------------------------- shared


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, default=None,
        help="model weights (.safetensors / .pt); default: the bundled model if present, "
             "else --config with random weights",
    )  # fmt: skip
    parser.add_argument(
        "--config", default=None, help="configuration to build with random weights (no checkpoint)"
    )


def load_model(args: argparse.Namespace) -> tuple[Reenactor, str]:
    """The reenactor (CPU weights) the arguments name, and where its weights came from."""
    from networks.checkpoint import CheckpointError
    from stages.reenact.model import DEFAULT_RANDOM_CONFIG, bundled_checkpoint, load_reenactor

    checkpoint: Path | None = args.checkpoint
    if checkpoint is not None and args.config is not None:
        raise UserError("give --checkpoint (the file names its configuration) or --config")
    if checkpoint is not None and not checkpoint.is_file():
        raise UserError(f"checkpoint {checkpoint} not found")
    if checkpoint is None and args.config is None:
        checkpoint = bundled_checkpoint()
    try:
        reenactor, label, _ = load_reenactor(checkpoint, args.config or DEFAULT_RANDOM_CONFIG)
    except (CheckpointError, ValueError) as exc:
        raise UserError(str(exc)) from None
    return reenactor, label


def _threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=_positive, default=1,
        help="intra-op threads of torch and ONNX Runtime (default 1: steady on a busy CPU)",
    )  # fmt: skip


def _print_step(step: ExportStep) -> None:
    print(step.line(), flush=True)


def _backend_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UserError(f"{what}: unknown backend(s) {unknown or [text]}; choose from {allowed}")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# ---------------------------------------------------------------------- model info


def _register_model(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    model = subparsers.add_parser("model", help="facts about the model configurations")
    actions = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    info = actions.add_parser(
        "info",
        help="parameters, FLOPs and CPU ms/frame per configuration and backend",
        description="Per configuration (random weights): parameters, FLOPs per frame with a "
        "cached avatar, and measured CPU ms/frame (motion + generate, batch 1, median) on each "
        "backend. Times depend on the machine's load.",
    )
    info.add_argument(
        "--config", action="append", default=None, metavar="NAME",
        help="configuration (repeatable; default: all)",
    )  # fmt: skip
    info.add_argument("--backends", default=",".join(CPU_BACKENDS), help="comma-separated")
    info.add_argument(
        "--repeats", type=_positive, default=None,
        help="timed frames per backend (default: as many as fit in --seconds)",
    )  # fmt: skip
    info.add_argument("--seconds", type=float, default=3.0, help="timing budget per backend")
    info.add_argument("--threads", type=_positive, default=1, help="intra-op threads per engine")
    info.set_defaults(handler=handle_model_info)


def handle_model_info(args: argparse.Namespace) -> int:
    from benchmarks.model import TimingPlan, measure_config
    from networks.config import list_configs

    configs = args.config or list_configs()
    unknown = [c for c in configs if c not in list_configs()]
    if unknown:
        raise UserError(f"unknown configuration(s) {unknown}; choose from {list_configs()}")
    backends = _cpu_backends(args.backends)
    plan = TimingPlan(repeats=args.repeats, budget_s=args.seconds, threads=args.threads)
    print(_info_header(backends))
    for name in configs:
        print(_info_row(name, backends, measure_config(name, backends, plan)), flush=True)
    print(
        f"random weights; median of the timed frames; {args.threads} intra-op thread(s); "
        "parity: ONNX Runtime vs torch on the image, batch 1 and 3 (raw output)"
    )
    return 0


def _cpu_backends(text: str) -> list[str]:
    if "tensorrt" in text.split(","):
        raise UserError(
            "model info measures CPU backends (torch, onnxruntime); "
            "TensorRT figures come from 'vicocam doctor --gpu'"
        )
    backends = _backend_list(text, CPU_BACKENDS, "--backends")
    _require_available(backends)
    return backends


def _require_available(backends: Sequence[str]) -> None:
    from trt_engines.registry import default_backends

    for backend in default_backends():
        reasons = backend.probe() if backend.name in backends else []
        if reasons:
            raise UserError(f"backend {backend.name} cannot run here: {'; '.join(reasons)}")


def _info_header(backends: Sequence[str]) -> str:
    times = " ".join(f"{b + ' ms':>16}" for b in backends)
    fixed = f"{'config':<14} {'params':>12} {'GFLOPs':>8}"
    return f"{fixed} {times} {'fastest':>12} {'ORT max abs':>12}"


def _info_row(name: str, backends: Sequence[str], figures: Mapping[str, Any]) -> str:
    times = " ".join(f"{figures['ms_per_frame'][b]:>16.1f}" for b in backends)
    parity = figures.get("parity")
    diff = "-" if parity is None else f"{parity['image_max_abs_raw']:.2g}"
    return (
        f"{name:<14} {figures['params']:>12,d} {figures['gflops_per_frame']:>8.2f} {times} "
        f"{figures['fastest_cpu_backend']:>12} {diff:>12}"
    )


# ---------------------------------------------------------------------- selfcheck


def _register_selfcheck(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "selfcheck",
        help="the same random inputs through every backend vs torch, pass/fail",
        description="Run both graphs of the model on every available backend and on torch with "
        "the same random inputs, compare (max abs <= 1e-4 for ONNX Runtime, 1e-3 for TensorRT "
        "FP32, raised to twice torch's own rounding floor where that is higher) and print a "
        "pass/fail table. Exit code 1 when any check fails.",
    )
    _model_arguments(parser)
    parser.add_argument(
        "--backends", default=None,
        help=f"comma-separated, from {', '.join(CHECKED_BACKENDS)} (default: all available)",
    )  # fmt: skip
    parser.add_argument("--batches", default="1,3", help="batch sizes to compare")
    _threads_argument(parser)
    parser.add_argument("--device", default="cuda:0", help="the TensorRT device")
    parser.add_argument("--cache", type=Path, default=None, help="engine cache root")
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
    reenactor, label = load_model(args)
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

    wanted = CHECKED_BACKENDS if args.backends is None else _backend_list(
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
    cache = EngineCache((args.cache or _default_root()) / "tensorrt-selfcheck")

    def open_trt(case: GraphCase) -> Engine:
        path = prepare_onnx(case, tmp / "tensorrt")
        source = TrtSource(case.name, path, case.inputs, batch, BuildOptions("fp32-notf32"))
        return open_trt_engine(source, cache, args.device)

    return open_trt


def _default_root() -> Path:
    from stages.reenact.model import default_cache_dir

    return default_cache_dir()


# ---------------------------------------------------------------------- doctor


def _register_doctor(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _model_arguments(parser)
    parser.add_argument("--device", default="cuda:0", help="the GPU to test")
    parser.add_argument("--cache", type=Path, default=None, help="engine cache root")
    parser.add_argument("--max-batch", type=_positive, default=4, help="engine batch maximum")
    parser.add_argument("--frames", type=_positive, default=200, help="frames per latency run")
    parser.set_defaults(handler=handle_doctor)


def handle_doctor(args: argparse.Namespace) -> int:
    from trt_engines.doctor import system_report

    print(system_report(lambda: _cameras(virtual=False)).format())
    print("\n".join(virtual_camera_lines()))
    return _gpu_doctor(args) if args.gpu else 0


def _cameras(*, virtual: bool) -> list[str]:
    """Real cameras (``virtual=False``) or v4l2loopback outputs, as ``N: name (path)``."""
    from stages.camera import list_cameras

    found = [c for c in list_cameras() if c.virtual == virtual]
    return [f"{c.device}: {c.name}" + (f" ({c.path})" if c.path else "") for c in found]


def virtual_camera_lines() -> list[str]:
    """What ``vicocam doctor`` says about virtual-camera output (never raises)."""
    from stages.virtualcam import MODPROBE_LINE, available_backends

    backends = available_backends()
    try:
        devices = _cameras(virtual=True)
    except Exception as exc:  # a device probe must not break the report
        devices = [f"(listing failed: {exc!r})"]
    lines = [
        f"{'virtual cameras':<17} {', '.join(devices) or '-'}",
        f"{'vcam backends':<17} {', '.join(backends) or '-'}",
    ]
    if not backends:
        lines.append("hint: no virtual-camera backend: pip install 'vicocam[virtualcam]'")
    if platform.system() == "Linux" and not devices:
        lines.append(f"hint: no v4l2loopback device for virtual-camera output: {MODPROBE_LINE}")
    return lines


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

    reenactor, label = load_model(args)
    print(f"model: {label}")
    cases = model_cases(reenactor)
    folder = engine_folder(args.cache, reenactor)
    options = ExportOptions(max_batch=args.max_batch, fp16=True)
    export = export_graphs(cases, folder, options, on_step=_print_step)
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


def engine_folder(cache: Path | None, reenactor: Reenactor) -> Path:
    """Where the model's ONNX graphs and engines live: the folder `vicocam run` reuses."""
    from stages.reenact.model import weights_digest

    digest = weights_digest(reenactor.generator, reenactor.config)
    return (cache or _default_root()) / "onnx" / f"{reenactor.config.name}-{digest}"


# ---------------------------------------------------------------------- engines


def _register_engines(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    engines = subparsers.add_parser("engines", help="export ONNX graphs and build TensorRT engines")
    actions = engines.add_subparsers(dest="engines_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="export, check and build the TensorRT engines of a model",
        description="Export both graphs (opset 18, dynamic batch), fold constants, lint, check "
        "ONNX Runtime against PyTorch, convert to FP16 (--precision fp16), then build the "
        "TensorRT engines through the engine cache that 'vicocam run' reuses. Without "
        "TensorRT the ONNX steps still run and the build stops with what to install.",
    )
    _model_arguments(build)
    build.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    build.add_argument("--max-batch", type=_positive, default=4, help="largest batch")
    build.add_argument("--cache", type=Path, default=None, help="cache root (default: user cache)")
    build.add_argument("--device", default="cuda:0", help="the GPU to build for")
    _threads_argument(build)
    build.set_defaults(handler=handle_engines_build)
    export = actions.add_parser(
        "export",
        help="export, fold, lint and check the ONNX graphs of a model (no GPU needed)",
        description="Write motion.onnx and generate.onnx (and .fp16.onnx with --fp16) to --out, "
        "after the same checks as 'engines build'.",
    )
    _model_arguments(export)
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument("--fp16", action="store_true", help="also write the FP16-typed graphs")
    export.add_argument("--max-batch", type=_positive, default=4, help="largest batch")
    _threads_argument(export)
    export.set_defaults(handler=handle_engines_export)


def _export(args: argparse.Namespace, reenactor: Reenactor, out: Path, fp16: bool) -> ExportReport:
    from trt_engines.graph_export import ExportOptions, export_graphs
    from trt_engines.model_graphs import model_cases
    from trt_engines.ort_engine import OrtOptions
    from trt_engines.torch_engine import torch_threads

    print(f"exporting to {out}")
    ort = OrtOptions(intra_op_threads=args.threads)
    options = ExportOptions(max_batch=args.max_batch, fp16=fp16, ort=ort)
    try:
        with torch_threads(args.threads):
            report = export_graphs(model_cases(reenactor), out, options, on_step=_print_step)
    except (OSError, ValueError) as exc:
        raise UserError(f"export failed: {exc}") from None
    if not report.passed:
        print("ONNX Runtime does not match PyTorch (see the parity lines above)", file=sys.stderr)
    return report


def handle_engines_export(args: argparse.Namespace) -> int:
    reenactor, label = load_model(args)
    print(f"model: {label}")
    report = _export(args, reenactor, args.out, args.fp16)
    return 0 if report.passed else 1


def handle_engines_build(args: argparse.Namespace) -> int:
    from trt_engines.registry import probe_tensorrt

    reenactor, label = load_model(args)
    print(f"model: {label}")
    folder = engine_folder(args.cache, reenactor)
    report = _export(args, reenactor, folder, args.precision == "fp16")
    if not report.passed:
        return 1
    reasons = probe_tensorrt()
    if reasons:
        raise UserError(
            f"the ONNX graphs are ready in {folder}, but TensorRT engines cannot be built "
            "on this machine:\n  - " + "\n  - ".join(reasons)
        )
    _build_engines(args, reenactor, report)
    return 0


def _build_engines(args: argparse.Namespace, reenactor: Reenactor, report: ExportReport) -> None:
    from trt_engines.cache import EngineCache
    from trt_engines.profiles import BatchRange
    from trt_engines.trt_build import BuildOptions
    from trt_engines.trt_engine import TrtSource, open_trt_engine

    precision = "fp16-strong" if args.precision == "fp16" else "fp32-notf32"
    cache = EngineCache(report.graphs[0].onnx_path.parent / "tensorrt")
    batch = BatchRange(1, 1, args.max_batch)
    specs = (reenactor.motion_graph.input_specs, reenactor.generate_graph.input_specs)
    for graph, inputs in zip(report.graphs, specs, strict=True):
        path = graph.onnx_fp16_path if args.precision == "fp16" else graph.onnx_path
        # Named as `vicocam run` names its sources, so that it finds these plans.
        name = f"{graph.name}:{reenactor.config.name}"
        source = TrtSource(name, path or graph.onnx_path, inputs, batch, BuildOptions(precision))
        with open_trt_engine(source, cache, args.device):
            print(f"{graph.name:<10} built {precision}, batch 1..{args.max_batch} in {cache.root}")
