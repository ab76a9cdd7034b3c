"""What this machine can run (``system_report``) and the GPU self-test.

`system_report` never fails: every probe that cannot answer records ``None``
and, where something is missing, a "what to install" hint. Cameras are listed
by a callable the caller passes in, so this module does not depend on the
capture code.

`gpu_selftest` builds TensorRT engines from ONNX graphs, checks them against
the torch reference with the project's gates (FP32 without TF32: max abs
<= 1e-3; FP16: mean abs <= 5e-3 and PSNR >= 35 dB, max abs logged only),
checks that bad inputs are refused, and measures ms per call. Each graph is
checked and timed on a stream of its own (`BenchConfig.stream`; on CUDA a
``torch.cuda.Stream``, timed with its events), never on the legacy default
stream, on which TensorRT adds device syncs. Without TensorRT or CUDA it
refuses with `BackendUnavailableError` naming what to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from trt_engines.cache import EngineCache
from trt_engines.engine import Engine, TensorSpec
from trt_engines.errors import CUDA_TORCH_HINT, TRT_INSTALL_HINT, BackendUnavailableError
from trt_engines.onnx_fp16 import convert_to_fp16
from trt_engines.parity import Comparator, FeedMaker, ParityReport, Tolerance, random_feeds
from trt_engines.profiles import BatchRange
from trt_engines.registry import probe_tensorrt
from trt_engines.streams import DeviceStream, make_stream
from trt_engines.trt_build import BuildOptions
from trt_engines.trt_engine import TrtSource, open_trt_engine

log = logging.getLogger(__name__)

PRECISION_GATES: Mapping[str, Tolerance] = {
    "fp32-notf32": Tolerance(max_abs=1e-3),
    "fp16-strong": Tolerance(max_abs=None, mean_abs=5e-3, min_psnr_db=35.0),
}
VIRTUALCAM_HINT = "pip install 'vicocam[virtualcam]' (on Linux also load v4l2loopback)"


# ---------------------------------------------------------------------- report


@dataclass(frozen=True)
class GpuEntry:
    """One CUDA device as torch sees it."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_gib: float


@dataclass(frozen=True)
class SystemReport:
    """The machine's inference stack; ``None`` means "not found / not probed".

    Attributes:
        cameras: names from the camera callable; ``None`` if none was given
            or it failed (then ``camera_error`` says why).
        hints: one line per missing piece, saying what to install.
    """

    python: str
    platform: str
    torch: str
    torch_cuda_build: str | None
    cuda_available: bool
    gpus: tuple[GpuEntry, ...]
    driver: str | None
    cudnn: int | None
    tensorrt: str | None
    onnxruntime: str | None
    ort_providers: tuple[str, ...]
    pyvirtualcam: str | None
    cameras: tuple[str, ...] | None
    camera_error: str | None
    hints: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """Human-readable lines, one per field, hints last."""
        gpus = ", ".join(
            f"#{g.index} {g.name} (sm{g.compute_capability[0]}{g.compute_capability[1]}, "
            f"{g.memory_gib:.1f} GiB)"
            for g in self.gpus
        )
        rows = [
            ("python", self.python),
            ("platform", self.platform),
            ("torch", self.torch),
            ("torch CUDA build", self.torch_cuda_build),
            ("CUDA available", self.cuda_available),
            ("GPUs", gpus or None),
            ("driver", self.driver),
            ("cuDNN", self.cudnn),
            ("TensorRT", self.tensorrt),
            ("ONNX Runtime", self.onnxruntime),
            ("ORT providers", ", ".join(self.ort_providers) or None),
            ("pyvirtualcam", self.pyvirtualcam),
            ("cameras", self.camera_error or ", ".join(self.cameras or ()) or None),
        ]
        lines = [f"{k:<17} {'-' if v is None else v}" for k, v in rows]
        return "\n".join(lines + [f"hint: {h}" for h in self.hints])


def system_report(
    list_cameras: Callable[[], Sequence[str]] | None = None,
    *,
    driver_version: Callable[[], str | None] | None = None,
) -> SystemReport:
    """Probe the machine; never raises. See `SystemReport`."""
    cuda = torch.cuda.is_available()
    tensorrt = _tensorrt_version()
    pyvirtualcam = _dist_version("pyvirtualcam")
    cameras, camera_error = _cameras(list_cameras)
    ort_version, providers = _onnxruntime()
    return SystemReport(
        python=sys.version.split()[0],
        platform=platform.platform(),
        torch=torch.__version__,
        torch_cuda_build=torch.version.cuda,
        cuda_available=cuda,
        gpus=_gpus() if cuda else (),
        driver=(driver_version or nvidia_driver_version)(),
        cudnn=torch.backends.cudnn.version() if cuda else None,
        tensorrt=tensorrt,
        onnxruntime=ort_version,
        ort_providers=providers,
        pyvirtualcam=pyvirtualcam,
        cameras=cameras,
        camera_error=camera_error,
        hints=tuple(_hints(cuda, tensorrt, pyvirtualcam, cameras, ort_version)),
    )


def _hints(
    cuda: bool,
    tensorrt: str | None,
    pyvirtualcam: str | None,
    cameras: tuple[str, ...] | None,
    ort_version: str | None,
) -> list[str]:
    hints = []
    if not cuda:
        build = torch.version.cuda or "CPU-only"
        hints.append(f"no CUDA GPU visible to torch ({build} build): {CUDA_TORCH_HINT}")
    if tensorrt is None:
        hints.append(f"TensorRT not importable: {TRT_INSTALL_HINT}")
    if ort_version is None:
        hints.append("ONNX Runtime not importable: pip install onnxruntime")
    if pyvirtualcam is None:
        hints.append(f"no virtual-camera support: {VIRTUALCAM_HINT}")
    if cameras == ():
        hints.append("no camera found: plug one in, or drive from a video file or WebRTC")
    return hints


def _gpus() -> tuple[GpuEntry, ...]:
    entries = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        entries.append(
            GpuEntry(i, props.name, (props.major, props.minor), props.total_memory / 2**30)
        )
    return tuple(entries)


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver version from ``nvidia-smi``, or ``None``."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def _tensorrt_version() -> str | None:
    try:
        return str(importlib.import_module("tensorrt").__version__)
    except Exception:  # a broken install (missing .so) raises more than ImportError
        return None


def _onnxruntime() -> tuple[str | None, tuple[str, ...]]:
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return None, ()
    return str(ort.__version__), tuple(ort.get_available_providers())


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cameras(
    list_cameras: Callable[[], Sequence[str]] | None,
) -> tuple[tuple[str, ...] | None, str | None]:
    if list_cameras is None:
        return None, None
    try:
        return tuple(list_cameras()), None
    except Exception as exc:  # a camera probe must not break the report
        return None, f"camera listing failed: {exc!r}"


# ---------------------------------------------------------------------- self-test


@dataclass(frozen=True)
class SelfTestGraph:
    """One graph to self-test.

    Attributes:
        name: graph name (rows, plan files).
        onnx_path: the folded FP32 ONNX.
        reference: makes the torch reference engine on the test device.
        inputs: the graph's input specs.
        batch: batch range of the engines; parity runs at min, opt and max.
        onnx_fp16_path: FP16-typed ONNX; made from ``onnx_path`` if ``None``.
        feeds: draws the parity inputs (see `parity.FeedMaker`); ``None`` =
            uniform random per input, which suits trained weights but not
            a randomly initialised generator.
    """

    name: str
    onnx_path: Path
    reference: Callable[[], Engine]
    inputs: tuple[TensorSpec, ...]
    batch: BatchRange = field(default_factory=BatchRange)
    onnx_fp16_path: Path | None = None
    feeds: FeedMaker | None = None


@dataclass(frozen=True)
class SelfTestRow:
    """Result for one graph at one precision (worst case over batches and outputs)."""

    graph: str
    precision: str
    passed: bool
    max_abs: float
    mean_abs: float
    psnr_db: float
    ms_engine: float
    ms_reference: float
    detail: str


@dataclass(frozen=True)
class SelfTestTable:
    rows: tuple[SelfTestRow, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def format(self) -> str:
        lines = [
            f"{'graph':<14} {'precision':<12} {'max abs':>9} {'mean abs':>9} {'PSNR dB':>8} "
            f"{'ms trt':>8} {'ms torch':>9}  result"
        ]
        for r in self.rows:
            lines.append(
                f"{r.graph:<14} {r.precision:<12} {r.max_abs:>9.2g} {r.mean_abs:>9.2g} "
                f"{r.psnr_db:>8.1f} {r.ms_engine:>8.2f} {r.ms_reference:>9.2f}  "
                f"{'ok' if r.passed else 'FAIL'} {r.detail}".rstrip()
            )
        return "\n".join(lines)


OpenEngine = Callable[[SelfTestGraph, str, Path], Engine]
"""(graph, precision, cache_dir) -> engine under test."""


StreamMaker = Callable[[torch.device, Callable[[], float]], DeviceStream]
"""(device, clock) -> the stream a graph is checked and timed on."""


@dataclass(frozen=True)
class BenchConfig:
    """Timing loop settings.

    Attributes:
        iterations: timed calls per engine.
        warmup: untimed calls first.
        clock: the CPU stand-in's clock (on CUDA the stream's events time
            the work on the GPU); injectable for tests.
        stream: makes each graph's stream: by default `make_stream`, a CUDA
            stream of its own (never the legacy default stream, on which
            TensorRT adds device syncs), or the CPU stand-in.
    """

    iterations: int = 50
    warmup: int = 5
    clock: Callable[[], float] = time.perf_counter
    stream: StreamMaker = make_stream


def gpu_selftest(
    graphs: Sequence[SelfTestGraph],
    cache_dir: Path,
    *,
    device: torch.device | str = "cuda:0",
    precisions: Sequence[str] = ("fp32-notf32", "fp16-strong"),
    bench: BenchConfig | None = None,
    readiness: Callable[[], list[str]] = probe_tensorrt,
    open_engine: OpenEngine | None = None,
) -> SelfTestTable:
    """Build, check and time a TensorRT engine per graph and precision.

    Raises `BackendUnavailableError` (with what to install) when
    ``readiness()`` reports TensorRT or CUDA missing. ``open_engine`` defaults
    to building through the engine cache in ``cache_dir``.
    """
    reasons = readiness()
    if reasons:
        raise BackendUnavailableError("tensorrt", reasons)
    device = torch.device(device)
    cache_dir.mkdir(parents=True, exist_ok=True)
    opener = open_engine or _trt_opener(device)
    bench = bench or BenchConfig()
    rows = [
        _test_one(graph, precision, cache_dir, opener, bench, device)
        for graph in graphs
        for precision in precisions
    ]
    table = SelfTestTable(tuple(rows))
    log.info("GPU self-test:\n%s", table.format())
    return table


def _test_one(
    graph: SelfTestGraph,
    precision: str,
    cache_dir: Path,
    opener: OpenEngine,
    bench: BenchConfig,
    device: torch.device,
) -> SelfTestRow:
    stream = bench.stream(device, bench.clock)
    reference = graph.reference()
    engine = opener(graph, precision, cache_dir)
    try:
        with stream.activate():
            batches = sorted({graph.batch.min, graph.batch.opt, graph.batch.max})
            gate = PRECISION_GATES[precision]
            report = Comparator([reference, engine], gate, feeds=graph.feeds).run(batches)
            refusals = _refusal_problems(engine, graph)
        feeds = random_feeds(graph.inputs, graph.batch.opt)
        ms_engine = benchmark(engine, feeds, bench, stream)
        ms_reference = benchmark(reference, feeds, bench, stream)
    finally:
        engine.close()
        reference.close()
    return _row(graph.name, precision, report, refusals, ms_engine, ms_reference)


def _row(
    graph: str,
    precision: str,
    report: ParityReport,
    refusals: list[str],
    ms_engine: float,
    ms_reference: float,
) -> SelfTestRow:
    worst_max = max(report.rows, key=lambda r: r.max_abs)
    worst_mean = max(report.rows, key=lambda r: r.mean_abs)
    worst_psnr = min(report.rows, key=lambda r: r.psnr_db)
    problems = [f for r in report.failures() for f in r.failures] + refusals
    return SelfTestRow(
        graph,
        precision,
        not problems,
        worst_max.max_abs,
        worst_mean.mean_abs,
        worst_psnr.psnr_db,
        ms_engine,
        ms_reference,
        "; ".join(dict.fromkeys(problems)),
    )


def _refusal_problems(engine: Engine, graph: SelfTestGraph) -> list[str]:
    """The engine must refuse a wrong dtype and a batch above its profile."""
    device = engine.device
    problems = []
    feeds = {k: v.to(device) for k, v in random_feeds(graph.inputs, graph.batch.min).items()}
    first = graph.inputs[0].name
    cases = {
        "wrong dtype": {**feeds, first: feeds[first].to(torch.float64)},
        "batch above the profile": {
            k: v.to(device) for k, v in random_feeds(graph.inputs, graph.batch.max + 1).items()
        },
    }
    for what, bad in cases.items():
        try:
            engine.run(bad)
        except ValueError:
            continue
        problems.append(f"{what} was not refused")
    return problems


def benchmark(
    engine: Engine, feeds: Mapping[str, torch.Tensor], bench: BenchConfig, stream: DeviceStream
) -> float:
    """Mean milliseconds per `run` on ``stream`` after ``bench.warmup`` untimed calls.

    Everything (the copy of the feeds too) is enqueued on ``stream``; the
    time is between two timing events recorded on it (see
    `trt_engines.streams`).
    """
    with stream.activate():
        placed = {k: v.to(engine.device) for k, v in feeds.items()}
        for _ in range(bench.warmup):
            engine.run(placed)
        start = stream.record(stream.new_event(timing=True))
        for _ in range(bench.iterations):
            engine.run(placed)
        end = stream.record(stream.new_event(timing=True))
    return stream.elapsed_ms(start, end) / max(bench.iterations, 1)


def _trt_opener(device: torch.device) -> OpenEngine:
    def open_trt(graph: SelfTestGraph, precision: str, cache_dir: Path) -> Engine:
        onnx_path = graph.onnx_path
        if precision == "fp16-strong":
            onnx_path = graph.onnx_fp16_path or cache_dir / f"{graph.name}.fp16.onnx"
            if graph.onnx_fp16_path is None:
                convert_to_fp16(graph.onnx_path, onnx_path)
        source = TrtSource(
            graph.name, onnx_path, graph.inputs, graph.batch, BuildOptions(precision)
        )
        return open_trt_engine(source, EngineCache(cache_dir), device)

    return open_trt
