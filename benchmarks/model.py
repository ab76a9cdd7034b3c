"""How big and how fast is each model configuration, per CPU backend?

For every configuration: parameters, FLOPs per frame with a cached avatar
(`networks.flops`), and measured milliseconds per frame on each CPU backend
(PyTorch eager through `TorchEngine`, ONNX Runtime through `OrtEngine`),
with randomly initialised weights (seed 0). A frame is the two per-frame
graphs the avatar path runs: ``motion`` on a driver crop, then ``generate``
with the cached avatar and the driver's coefficients (their composition is
a few vector ops and is left out). Every engine gets ``threads`` intra-op
threads (default 1, what the live path gives each stage's engine).

Parity: the ONNX graphs are exported, folded and linted exactly as
``vicocam engines export`` does (`trt_engines.graph_export`), and ONNX
Runtime is compared with PyTorch on picture-like random inputs (see
`trt_engines.model_graphs`) at batch 1 and 3. The weights are
`networks.random_init.random_generator`'s (seed 0; flows of a trained
model's size). The generator's output is not clamped and spans about
[-0.5, 2.5], so three figures are kept for the ``image`` output: the raw max
abs difference, the max abs difference after clamping both to [-1, 1] (what
the compositor shows), and PyTorch's own rounding floor (how far one float32
rounding of the inputs moves PyTorch's output), beside the peak |output|.
``parity_default_init`` repeats the generate graph's figures at batch 1 with
LIA's raw initialisation (flow gain 1), whose scrambling flows raise the
rounding floor itself above 1e-4 for the larger configurations.

The 256 px configurations take about a second per frame on a small CPU:
the time budget gives them a few frames, the small ones many more.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trt_engines.backends import CPU_BACKENDS
from trt_engines.engine import Engine
from trt_engines.graph_export import ExportOptions, ExportReport, GraphCase, case_feeds
from trt_engines.model_graphs import model_cases
from trt_engines.ort_engine import OrtEngine, OrtOptions
from trt_engines.torch_engine import TorchEngine, torch_threads

DEFAULT_SECONDS = 120.0
Clock = Callable[[], float]


@dataclass(frozen=True)
class TimingPlan:
    """How many frames to time per configuration and backend.

    Attributes:
        repeats: a fixed number of timed frames; ``None`` = from the budget.
        budget_s: seconds of timed frames per configuration and backend;
            the count is the budget over the warm-up frame's time, clamped
            to ``[min_repeats, max_repeats]``.
        threads: intra-op threads of every engine.
    """

    repeats: int | None = None
    budget_s: float = 10.0
    min_repeats: int = 2
    max_repeats: int = 200
    threads: int = 1

    def frames_for(self, warm_s: float) -> int:
        if self.repeats is not None:
            return self.repeats
        fit = int(self.budget_s / max(warm_s, 1e-6))
        return max(self.min_repeats, min(self.max_repeats, fit))


def size_figures(config: str) -> dict[str, Any]:
    """``params`` and ``gflops_per_frame`` (cached avatar, batch 1) of a configuration."""
    from networks.flops import flops_per_frame, param_count

    return {"params": param_count(config), "gflops_per_frame": flops_per_frame(config) / 1e9}


def open_cpu_engines(
    backend: str, cases: Sequence[GraphCase], export: ExportReport | None, threads: int
) -> tuple[Engine, Engine]:
    """``(motion, generate)`` on a CPU backend; ONNX Runtime needs the ``export`` report."""
    engines: list[Engine]
    if backend == "torch":
        engines = [
            TorchEngine(c.module, c.inputs, c.outputs, device="cpu", name=f"torch:{c.name}")
            for c in cases
        ]
        return engines[0], engines[1]
    if backend == "onnxruntime" and export is not None:
        options = OrtOptions(intra_op_threads=threads)
        engines = [
            OrtEngine(g.onnx_path, options=options, name=f"onnxruntime:{g.name}")
            for g in export.graphs
        ]
        return engines[0], engines[1]
    raise ValueError(f"no CPU engines for backend {backend!r} (choose from {CPU_BACKENDS})")


def time_frames(
    motion: Engine,
    generate: Engine,
    driver: Mapping[str, torch.Tensor],
    avatar: Mapping[str, torch.Tensor],
    plan: TimingPlan,
    clock: Clock = time.perf_counter,
) -> dict[str, float]:
    """Median ms of a frame and of each graph, after one untimed warm-up frame."""
    warm = _one_frame(motion, generate, driver, avatar, clock)
    rows = [
        _one_frame(motion, generate, driver, avatar, clock)
        for _ in range(plan.frames_for(warm[2] / 1e3))
    ]
    return {
        "ms_per_frame": statistics.median(r[2] for r in rows),
        "motion_ms": statistics.median(r[0] for r in rows),
        "generate_ms": statistics.median(r[1] for r in rows),
        "frames": len(rows),
    }


def _one_frame(
    motion: Engine,
    generate: Engine,
    driver: Mapping[str, torch.Tensor],
    avatar: Mapping[str, torch.Tensor],
    clock: Clock,
) -> tuple[float, float, float]:
    start = clock()
    coeffs = motion.run(driver)["coeffs"]
    middle = clock()
    generate.run({**avatar, "alpha": coeffs})
    end = clock()
    return (middle - start) * 1e3, (end - middle) * 1e3, (end - start) * 1e3


def image_parity(
    reference: Engine, other: Engine, feeds: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Raw and [-1, 1]-clamped max abs difference of ``image``, and the peak |image|."""
    ref = reference.run(feeds)["image"]
    got = other.run(feeds)["image"]
    return {
        "max_abs_raw": float((got - ref).abs().max()),
        "max_abs_clamped": float((got.clamp(-1, 1) - ref.clamp(-1, 1)).abs().max()),
        "output_peak": float(ref.abs().max()),
    }


def measure_config(
    config: str,
    backends: Sequence[str] = CPU_BACKENDS,
    plan: TimingPlan | None = None,
    *,
    workdir: Path | None = None,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    """Size, ms per frame per backend and (with ONNX Runtime) parity of one configuration."""
    from trt_engines.bundle import load_reenactor

    plan = plan or TimingPlan()
    figures = size_figures(config)
    with torch_threads(plan.threads), _folder(workdir) as folder:
        reenactor = load_reenactor(None, config, seed=0).reenactor
        cases = model_cases(reenactor)
        export = _export(cases, folder / config) if "onnxruntime" in backends else None
        figures["ms_per_frame"], figures["ms_per_graph"] = _time_backends(
            cases, export, backends, plan, clock
        )
        if export is not None:
            figures["parity"] = _parity_figures(cases, export, plan.threads)
            figures["parity_default_init"] = _default_init_parity(
                config, folder / f"{config}-default-init", plan.threads
            )
    per_frame: dict[str, float] = figures["ms_per_frame"]
    figures["fastest_cpu_backend"] = min(per_frame, key=lambda b: per_frame[b])
    figures["threads"] = plan.threads
    return figures


@contextlib.contextmanager
def _folder(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="vicocam-model-") as tmp:
        yield Path(tmp)


def _export(cases: Sequence[GraphCase], folder: Path) -> ExportReport:
    from trt_engines.graph_export import export_graphs

    return export_graphs(cases, folder, ExportOptions())


def _time_backends(
    cases: Sequence[GraphCase],
    export: ExportReport | None,
    backends: Sequence[str],
    plan: TimingPlan,
    clock: Clock,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    motion_case, generate_case = cases
    driver = case_feeds(motion_case, 1, 0)
    avatar = {k: v for k, v in case_feeds(generate_case, 1, 0).items() if k != "alpha"}
    per_frame, per_graph = {}, {}
    for backend in backends:
        motion, generate = open_cpu_engines(backend, cases, export, plan.threads)
        with motion, generate:
            times = time_frames(motion, generate, driver, avatar, plan, clock)
        per_frame[backend] = times.pop("ms_per_frame")
        per_graph[backend] = times
    return per_frame, per_graph


def _parity_figures(
    cases: Sequence[GraphCase], export: ExportReport, threads: int
) -> dict[str, Any]:
    generate = export.graph("generate")
    motion = export.graph("motion")
    batches = sorted({r.batch for r in generate.parity.rows})
    per_batch = _generate_parity(cases[1], generate.onnx_path, threads, batches)
    return {
        "batches": batches,
        "image_max_abs_raw": max(p["max_abs_raw"] for p in per_batch),
        "image_max_abs_clamped": max(p["max_abs_clamped"] for p in per_batch),
        "image_peak_abs": max(p["output_peak"] for p in per_batch),
        "torch_rounding_floor": generate.floor,
        "coeffs_max_abs": motion.parity.worst("coeffs").max_abs,
        "within_1e-4_raw": max(p["max_abs_raw"] for p in per_batch) <= 1e-4,
        "within_1e-4_clamped": max(p["max_abs_clamped"] for p in per_batch) <= 1e-4,
        "passed_floor_aware_gate": generate.parity.passed and motion.parity.passed,
    }


def _generate_parity(
    case: GraphCase, onnx_path: Path, threads: int, batches: Sequence[int]
) -> list[dict[str, float]]:
    """`image_parity` of the generate graph, torch vs ONNX Runtime, per batch (seed = position)."""
    torch_engine = TorchEngine(case.module, case.inputs, case.outputs, device="cpu")
    ort_engine = OrtEngine(onnx_path, options=OrtOptions(intra_op_threads=threads))
    with torch_engine, ort_engine:
        return [
            image_parity(torch_engine, ort_engine, case_feeds(case, b, i))
            for i, b in enumerate(batches)
        ]


def _default_init_parity(config: str, folder: Path, threads: int) -> dict[str, Any]:
    """The generate graph's batch-1 figures with LIA's raw initialisation (flow gain 1)."""
    from networks.avatar import Reenactor
    from networks.config import get_config
    from networks.random_init import random_generator
    from trt_engines.graph_export import case_floor, prepare_onnx

    reenactor = Reenactor(random_generator(get_config(config), seed=0, flow_gain=1.0))
    _, case = model_cases(reenactor)
    (figures,) = _generate_parity(case, prepare_onnx(case, folder), threads, [1])
    with TorchEngine(case.module, case.inputs, case.outputs, device="cpu") as torch_engine:
        floor = case_floor(case, torch_engine, (1,))
    return {
        "flow_gain": 1.0,
        "image_max_abs_raw": figures["max_abs_raw"],
        "image_max_abs_clamped": figures["max_abs_clamped"],
        "image_peak_abs": figures["output_peak"],
        "torch_rounding_floor": floor,
    }


def run_model_bench(
    seconds: float | None = None,
    configs: Sequence[str] | None = None,
    backends: Sequence[str] = CPU_BACKENDS,
    threads: int = 1,
) -> dict[str, Any]:
    """One entry per configuration (see the module doc); ``seconds`` is the timing budget."""
    from networks.config import list_configs
    from networks.random_init import FLOW_GAIN
    from trt_engines.bundle import DEFAULT_CPU_BACKEND

    names = list(configs or list_configs())
    budget = (seconds or DEFAULT_SECONDS) / (len(names) * len(backends))
    plan = TimingPlan(budget_s=budget, threads=threads)
    result: dict[str, Any] = {name: measure_config(name, backends, plan) for name in names}
    result["method"] = {
        "weights": "random (seed 0), ToFlow heads scaled by the flow gain",
        "flow_gain": FLOW_GAIN,
        "threads": threads,
        "frame": "motion(driver) + generate(cached avatar, coeffs), batch 1, median",
        "parity_inputs": "picture-like random images; generate gets encoder outputs of them",
        "default_cpu_backend": DEFAULT_CPU_BACKEND,
    }
    return result
