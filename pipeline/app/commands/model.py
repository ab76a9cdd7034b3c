"""``vicocam model info``: parameters, FLOPs and CPU time of every configuration."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.app.options import positive_float, positive_int
from pipeline.errors import UserError
from trt_engines.backends import CPU_BACKENDS


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--repeats", type=positive_int, default=None,
        help="timed frames per backend (default: as many as fit in --seconds)",
    )  # fmt: skip
    info.add_argument("--seconds", type=positive_float, default=3.0,
                      help="timing budget per backend")
    info.add_argument("--threads", type=positive_int, default=1, help="intra-op threads per engine")
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
    backends = backend_list(text, CPU_BACKENDS, "--backends")
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


def backend_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UserError(f"{what}: unknown backend(s) {unknown or [text]}; choose from {allowed}")
    return names
