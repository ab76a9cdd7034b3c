"""Self-check: the same inputs through every backend, compared with the torch reference.

`selfcheck` opens each graph on each backend (through an `EngineOpener`, so
a caller or a test can add any engine), runs a `parity.Comparator` against
the torch reference at a few batch sizes and reduces the result to one
pass/fail row per graph and backend. Gates are per backend
(`BACKEND_GATES`); like `graph_export`, a max-abs gate below the
reference's own float32 rounding floor is raised to twice the floor and
the floor is shown beside it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from trt_engines.engine import Engine
from trt_engines.graph_export import GraphCase, case_floor
from trt_engines.parity import Comparator, ParityReport, Tolerance, above_floor
from trt_engines.torch_engine import TorchEngine

log = logging.getLogger(__name__)

EngineOpener = Callable[[GraphCase], Engine]
"""Makes the engine under test for one graph (it is closed after the check)."""

DEFAULT_GATE = Tolerance(max_abs=1e-4)
BACKEND_GATES: Mapping[str, Tolerance] = {
    "onnxruntime": DEFAULT_GATE,
    # FP32 engines built without TF32; TensorRT picks other conv algorithms.
    "tensorrt": Tolerance(max_abs=1e-3),
}


def torch_reference(case: GraphCase) -> Engine:
    """The reference engine: the case's module through `TorchEngine` on the CPU."""
    return TorchEngine(case.module, case.inputs, case.outputs, device="cpu", name="torch")


@dataclass(frozen=True)
class SelfCheckRow:
    """One graph on one backend, worst case over batch sizes and outputs.

    Attributes:
        max_abs / mean_abs: the worst differences from the reference
            (``inf`` when the engine could not be opened or run).
        floor: the reference's float32 rounding floor on the same inputs.
        gate: the max-abs limit applied (``None``: no max-abs limit).
        detail: why it failed; empty when it passed.
    """

    graph: str
    backend: str
    max_abs: float
    mean_abs: float
    floor: float
    gate: float | None
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class SelfCheckReport:
    """All rows, and the backends that were not checked with the reason."""

    rows: tuple[SelfCheckRow, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    def table(self) -> str:
        """A plain-text table to paste into an issue."""
        lines = [
            f"{'graph':<10} {'backend':<14} {'max abs':>9} {'mean abs':>9} {'gate':>9} "
            f"{'floor':>9}  result"
        ]
        for r in self.rows:
            gate = "-" if r.gate is None else f"{r.gate:.2g}"
            verdict = "ok" if r.passed else f"FAIL: {r.detail}"
            lines.append(
                f"{r.graph:<10} {r.backend:<14} {r.max_abs:>9.2g} {r.mean_abs:>9.2g} "
                f"{gate:>9} {r.floor:>9.2g}  {verdict}"
            )
        lines += [f"{backend:<25} skipped: {reason}" for backend, reason in self.skipped]
        return "\n".join(lines)


def selfcheck(
    cases: Sequence[GraphCase],
    openers: Mapping[str, EngineOpener],
    *,
    batches: Sequence[int] = (1, 3),
    gates: Mapping[str, Tolerance] = BACKEND_GATES,
    reference: EngineOpener = torch_reference,
    skipped: Sequence[tuple[str, str]] = (),
) -> SelfCheckReport:
    """Compare every backend in ``openers`` with ``reference`` on every case.

    ``skipped`` (backend, reason) pairs are carried into the report so the
    table says what was not checked and why.
    """
    rows = []
    for case in cases:
        with reference(case) as ref:
            floor = case_floor(case, ref, batches)
            for backend, opener in openers.items():
                gate = above_floor(gates.get(backend, DEFAULT_GATE), floor)
                rows.append(_check(case, ref, backend, opener, gate, floor, batches))
    return SelfCheckReport(tuple(rows), tuple(skipped))


def _check(
    case: GraphCase,
    ref: Engine,
    backend: str,
    opener: EngineOpener,
    gate: Tolerance,
    floor: float,
    batches: Sequence[int],
) -> SelfCheckRow:
    try:
        with opener(case) as engine:
            report = Comparator([ref, engine], gate, feeds=case.feeds).run(batches)
    except Exception as exc:  # an engine that cannot open or run is a failed check
        log.debug("self-check of %s on %s failed", case.name, backend, exc_info=True)
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return SelfCheckRow(
            case.name, backend, math.inf, math.inf, floor, gate.max_abs, False, detail
        )
    return _row(case.name, backend, report, floor, gate)


def _row(
    graph: str, backend: str, report: ParityReport, floor: float, gate: Tolerance
) -> SelfCheckRow:
    worst = max(report.rows, key=lambda r: r.max_abs)
    mean = max(r.mean_abs for r in report.rows)
    problems = dict.fromkeys(f for r in report.failures() for f in r.failures)
    return SelfCheckRow(
        graph, backend, worst.max_abs, mean, floor, gate.max_abs, report.passed, "; ".join(problems)
    )
