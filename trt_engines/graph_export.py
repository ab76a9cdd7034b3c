"""A model's graphs to checked ONNX files: export, fold, lint, parity, FP16.

`export_graphs` runs, for each `GraphCase`, the chain a TensorRT build needs
and records every step in an `ExportReport`, so a command can show what ran
on a machine without a GPU (building the engines themselves is
`trt_engines.trt_engine`'s job):

1. ``export``: TorchScript exporter, opset 18, dynamic batch -> ``NAME.raw.onnx``;
2. ``simplify``: constant folding, checked with ONNX Runtime -> ``NAME.onnx``;
3. ``lint``: opset 18, bilinear rank-4 GridSample, conv weights folded;
4. ``parity``: ONNX Runtime against the torch module on the case's inputs,
   gated at ``max abs <= 1e-4`` unless the module's own float32 rounding
   floor (`parity.rounding_floor`) is higher, and then at twice the floor;
   both figures are reported;
5. ``fp16`` (optional): the FP16-typed graph for strongly typed engines
   -> ``NAME.fp16.onnx``, linted again.

A failing export, fold or lint raises (after its step is recorded); a parity
failure is recorded and the chain goes on, so the report shows every figure.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import torch
from torch import nn

from trt_engines.engine import Engine, TensorSpec
from trt_engines.ort_engine import OrtEngine, OrtOptions
from trt_engines.parity import (
    Comparator,
    FeedMaker,
    ParityReport,
    Tolerance,
    above_floor,
    random_feeds,
    rounding_floor,
)
from trt_engines.torch_engine import TorchEngine

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True)
class GraphCase:
    """One graph to export and check.

    Attributes:
        name: the file stem and report label (``"motion"``, ``"generate"``).
        module: its ``forward`` takes the inputs in ``inputs`` order.
        inputs / outputs: the graph's I/O specs (batch is the dynamic dim).
        feeds: draws the parity inputs; ``None`` = uniform random per input.
            Generators with random weights need picture-like inputs (see
            `trt_engines.model_graphs`): white noise drives them where float
            rounding alone moves the output by 1e-2.
    """

    name: str
    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feeds: FeedMaker | None = None


@dataclass(frozen=True)
class ExportOptions:
    """How `export_graphs` exports and checks.

    Attributes:
        max_batch: the largest batch the engines will take (stored in the ONNX).
        fp16: also write the FP16-typed graph.
        parity_batches: batch sizes of the ONNX Runtime vs torch check.
        tolerance: the parity gate before the rounding-floor adjustment.
        simplify_tolerance: how far folding may move ONNX Runtime's outputs.
        ort: the ONNX Runtime session used for the parity check.
    """

    max_batch: int = 4
    fp16: bool = False
    parity_batches: tuple[int, ...] = (1, 3)
    tolerance: Tolerance = field(default_factory=lambda: Tolerance(max_abs=1e-4))
    simplify_tolerance: Tolerance = field(
        default_factory=lambda: Tolerance(max_abs=None, mean_abs=1e-5, min_psnr_db=80.0)
    )
    ort: OrtOptions = field(default_factory=lambda: OrtOptions(intra_op_threads=1))

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if any(b < 1 or b > self.max_batch for b in self.parity_batches):
            raise ValueError(
                f"parity batches {self.parity_batches} must lie in 1..max_batch={self.max_batch}"
            )


@dataclass(frozen=True)
class ExportStep:
    """One step of one graph: whether it passed, what it found, how long it took."""

    graph: str
    step: str
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        return f"{self.graph:<10} {self.step:<9} {verdict} {self.seconds:6.1f} s  {self.detail}"


@dataclass(frozen=True)
class GraphExport:
    """The files and parity figures of one exported graph.

    Attributes:
        onnx_path: the folded, linted FP32 graph.
        onnx_fp16_path: the FP16-typed graph, ``None`` unless asked for.
        parity: ONNX Runtime vs torch at every parity batch size.
        floor: the torch module's rounding floor (largest over outputs).
        tolerance: the gate the parity rows were judged with.
    """

    name: str
    onnx_path: Path
    onnx_fp16_path: Path | None
    parity: ParityReport
    floor: float
    tolerance: Tolerance


@dataclass(frozen=True)
class ExportReport:
    """Everything `export_graphs` did; `passed` when every graph's parity passed."""

    graphs: tuple[GraphExport, ...]
    steps: tuple[ExportStep, ...]

    @property
    def passed(self) -> bool:
        return all(g.parity.passed for g in self.graphs)

    def graph(self, name: str) -> GraphExport:
        for g in self.graphs:
            if g.name == name:
                return g
        raise KeyError(f"no graph {name!r}; exported: {[g.name for g in self.graphs]}")

    def table(self) -> str:
        return "\n".join(step.line() for step in self.steps)


@dataclass(frozen=True)
class _Done(Generic[T]):
    value: T
    detail: str
    ok: bool = True


class _StepLog:
    """Times steps, records them, and tells the caller as each one ends."""

    def __init__(self, on_step: Callable[[ExportStep], None], clock: Clock) -> None:
        self.steps: list[ExportStep] = []
        self.on_step = on_step
        self.clock = clock

    def run(self, graph: str, step: str, fn: Callable[[], _Done[T]]) -> T:
        start = self.clock()
        try:
            done = fn()
        except Exception as exc:
            self._record(ExportStep(graph, step, False, _first_line(exc), self.clock() - start))
            raise
        self._record(ExportStep(graph, step, done.ok, done.detail, self.clock() - start))
        return done.value

    def _record(self, step: ExportStep) -> None:
        self.steps.append(step)
        self.on_step(step)


def _first_line(exc: Exception) -> str:
    problems = getattr(exc, "problems", None)  # OnnxLintError lists them after a header
    if problems:
        return f"{type(exc).__name__}: " + "; ".join(problems)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def export_graphs(
    cases: Sequence[GraphCase],
    out_dir: str | Path,
    options: ExportOptions | None = None,
    *,
    on_step: Callable[[ExportStep], None] = lambda step: None,
    clock: Clock = time.perf_counter,
) -> ExportReport:
    """Export, fold, lint, check and (optionally) FP16-convert every case into ``out_dir``.

    ``on_step`` is called as each step ends (a command prints it). Raises
    `OnnxLintError` or `ValueError` from a failing step; see the module doc.
    """
    options = options or ExportOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = _StepLog(on_step, clock)
    graphs = tuple(_export_one(case, out, options, steps) for case in cases)
    return ExportReport(graphs, tuple(steps.steps))


def prepare_onnx(
    case: GraphCase,
    out_dir: str | Path,
    options: ExportOptions | None = None,
    *,
    on_step: Callable[[ExportStep], None] = lambda step: None,
    clock: Clock = time.perf_counter,
) -> Path:
    """Steps 1-3 only (export, fold, lint): ``out_dir/NAME.onnx``, ready for any backend."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _prepare(case, out, options or ExportOptions(), _StepLog(on_step, clock))


def _prepare(case: GraphCase, out: Path, options: ExportOptions, steps: _StepLog) -> Path:
    raw = steps.run(case.name, "export", lambda: _export(case, out, options))
    final = steps.run(case.name, "simplify", lambda: _simplify(case, raw, options))
    steps.run(case.name, "lint", lambda: _lint(final))
    return final


def _export_one(case: GraphCase, out: Path, options: ExportOptions, steps: _StepLog) -> GraphExport:
    final = _prepare(case, out, options, steps)
    parity, floor, gate = steps.run(case.name, "parity", lambda: _parity(case, final, options))
    fp16 = steps.run(case.name, "fp16", lambda: _fp16(final)) if options.fp16 else None
    return GraphExport(case.name, final, fp16, parity, floor, gate)


def _export(case: GraphCase, out: Path, options: ExportOptions) -> _Done[Path]:
    from trt_engines.onnx_export import TRT_OPSET, export_onnx

    with warnings.catch_warnings():
        # The tracer's notes on constant folding are about torch internals.
        warnings.simplefilter("ignore", UserWarning)
        path = export_onnx(
            case.module,
            case.inputs,
            [s.name for s in case.outputs],
            out / f"{case.name}.raw.onnx",
            max_batch=options.max_batch,
        )
    return _Done(path, f"opset {TRT_OPSET}, dynamic batch (max {options.max_batch}) -> {path.name}")


def _simplify(case: GraphCase, raw: Path, options: ExportOptions) -> _Done[Path]:
    from trt_engines.onnx_export import simplify_onnx

    final = raw.with_name(f"{case.name}.onnx")
    batches = sorted({1, min(2, options.max_batch)})
    report = simplify_onnx(
        raw, final, check_batches=batches, tolerance=options.simplify_tolerance, feeds=case.feeds
    )
    raw.unlink(missing_ok=True)
    worst = max(r.max_abs for r in report.parity.rows)
    detail = (
        f"{report.method}: {report.nodes_before} -> {report.nodes_after} nodes, "
        f"outputs moved by <= {worst:.2g} -> {final.name}"
    )
    return _Done(final, detail)


def _lint(path: Path) -> _Done[None]:
    from trt_engines.onnx_export import require_clean_onnx

    require_clean_onnx(path)
    return _Done(None, "opset 18, GridSample bilinear rank 4, conv weights folded")


def case_feeds(case: GraphCase, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """The inputs a `Comparator` over ``case`` draws for ``batch`` and ``seed``."""
    if case.feeds is not None:
        return case.feeds(case.inputs, batch, seed)
    return random_feeds(case.inputs, batch, seed)


def case_floor(case: GraphCase, reference: Engine, batches: Sequence[int], seed: int = 0) -> float:
    """The reference's `rounding_floor` on the case's parity inputs, largest over outputs.

    Uses the seeds `Comparator.run` uses (``seed + i`` for the i-th batch size).
    """
    return max(
        max(rounding_floor(reference, case_feeds(case, batch, seed + i)).values())
        for i, batch in enumerate(batches)
    )


def _parity(
    case: GraphCase, path: Path, options: ExportOptions
) -> _Done[tuple[ParityReport, float, Tolerance]]:
    reference = TorchEngine(case.module, case.inputs, case.outputs, device="cpu", name="torch")
    with OrtEngine(path, options=options.ort, name="onnxruntime") as ort:
        floor = case_floor(case, reference, options.parity_batches)
        gate = above_floor(options.tolerance, floor)
        report = Comparator([reference, ort], gate, feeds=case.feeds).run(options.parity_batches)
    worst = max(r.max_abs for r in report.rows)
    batches = ", ".join(str(b) for b in options.parity_batches)
    detail = (
        f"onnxruntime vs torch, batch {batches}: max abs {worst:.2g} "
        f"(gate {_gate_text(gate)}; torch rounding floor {floor:.2g})"
    )
    if not report.passed:
        detail += ": " + "; ".join(f for r in report.failures() for f in r.failures)
    return _Done((report, floor, gate), detail, report.passed)


def _gate_text(gate: Tolerance) -> str:
    parts = [f"max abs {gate.max_abs:.2g}"] if gate.max_abs is not None else []
    if gate.mean_abs is not None:
        parts.append(f"mean abs {gate.mean_abs:.2g}")
    if gate.min_psnr_db is not None:
        parts.append(f"PSNR {gate.min_psnr_db:g} dB")
    return ", ".join(parts) or "none"


def fp16_graph(path: Path) -> Path:
    """Write ``NAME.fp16.onnx`` beside ``path`` (the FP16-typed graph, linted) and return it."""
    return _fp16(path).value


def _fp16(path: Path) -> _Done[Path]:
    from trt_engines.onnx_export import require_clean_onnx
    from trt_engines.onnx_fp16 import convert_to_fp16

    dst = path.with_name(f"{path.stem}.fp16.onnx")
    with warnings.catch_warnings(record=True) as caught:
        # The converter warns once per weight below FP16's range; count them instead.
        warnings.simplefilter("always", UserWarning)
        kept = convert_to_fp16(path, dst)
    truncated = sum("truncated" in str(w.message) for w in caught)
    require_clean_onnx(dst)
    detail = f"{len(kept)} nodes kept in FP32, {truncated} tiny weights clamped to FP16's range"
    return _Done(dst, f"{detail}, linted -> {dst.name}")
