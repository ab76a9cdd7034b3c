"""Parity between engines: same seeded inputs in, per-output error figures out.

`Comparator` feeds identical random inputs (built from the first engine's input
specs) through two or more engines and compares every later engine against the
first (the reference) with max abs, mean abs and PSNR, judged by `Tolerance`.
It backs the parity tests, the ONNX simplification check and the GPU
self-test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

from trt_engines.engine import Engine, TensorSpec

Sampler = Callable[[TensorSpec, tuple[int, ...], torch.Generator], torch.Tensor]
"""Makes one input tensor (on the CPU) of the given shape from a seeded generator."""

FeedMaker = Callable[[Sequence[TensorSpec], int, int], dict[str, torch.Tensor]]
"""``(input specs, batch, seed) -> feeds`` on the CPU: all inputs at once, for
graphs whose inputs must be drawn jointly (e.g. features of one encoded picture).
The same seed must give the same tensors."""


@dataclass(frozen=True)
class Tolerance:
    """Pass/fail limits for one output; ``None`` disables a check.

    Attributes:
        max_abs: largest allowed absolute difference.
        mean_abs: largest allowed mean absolute difference.
        min_psnr_db: smallest allowed PSNR in dB.
        data_range: peak-to-peak range used for PSNR (2.0 for images in [-1, 1]).
    """

    max_abs: float | None = 1e-4
    mean_abs: float | None = None
    min_psnr_db: float | None = None
    data_range: float = 2.0


@dataclass(frozen=True)
class Diff:
    """Error figures of one output of one engine at one batch size."""

    engine: str
    reference: str
    batch: int
    output: str
    max_abs: float
    mean_abs: float
    psnr_db: float
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class ParityReport:
    """All `Diff` rows of one comparison; `passed` only if every row passed."""

    rows: tuple[Diff, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def failures(self) -> list[Diff]:
        return [r for r in self.rows if not r.passed]

    def worst(self, output: str) -> Diff:
        """The row with the largest max abs for ``output``."""
        rows = [r for r in self.rows if r.output == output]
        if not rows:
            raise KeyError(f"no rows for output {output!r}")
        return max(rows, key=lambda r: r.max_abs)

    def table(self) -> str:
        """A plain-text table, one line per row."""
        lines = [
            f"{'engine':<28} {'batch':>5} {'output':<12} {'max abs':>10} {'mean abs':>10} "
            f"{'PSNR dB':>8}  result"
        ]
        for r in self.rows:
            verdict = "ok" if r.passed else "FAIL: " + "; ".join(r.failures)
            lines.append(
                f"{r.engine:<28} {r.batch:>5} {r.output:<12} {r.max_abs:>10.3g} "
                f"{r.mean_abs:>10.3g} {r.psnr_db:>8.1f}  {verdict}"
            )
        return "\n".join(lines)


def default_sampler(spec: TensorSpec, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Floats ~ U(-1, 1) (image-like and latent-like inputs alike), ints in [0, 8), random bools."""
    if spec.dtype.is_floating_point:
        return (torch.rand(shape, generator=gen) * 2 - 1).to(spec.dtype)
    if spec.dtype == torch.bool:
        return torch.rand(shape, generator=gen) > 0.5
    return torch.randint(0, 8, shape, generator=gen).to(spec.dtype)


def random_feeds(
    specs: Sequence[TensorSpec],
    batch: int,
    seed: int = 0,
    sampler: Sampler = default_sampler,
) -> dict[str, torch.Tensor]:
    """Seeded CPU inputs for ``specs`` at ``batch``; same seed, same tensors."""
    gen = torch.Generator().manual_seed(seed)
    return {s.name: sampler(s, s.concrete(batch), gen) for s in specs}


def compare_tensors(reference: torch.Tensor, other: torch.Tensor, tol: Tolerance) -> Diff:
    """Figures for one pair; ``engine``/``output`` fields are left for the caller."""
    if reference.shape != other.shape:
        msg = f"shape {tuple(other.shape)} != reference {tuple(reference.shape)}"
        return Diff("", "", 0, "", math.inf, math.inf, -math.inf, (msg,))
    ref = reference.detach().to("cpu", torch.float64)
    got = other.detach().to("cpu", torch.float64)
    err = (got - ref).abs()
    max_abs = float(err.max()) if err.numel() else 0.0
    mean_abs = float(err.mean()) if err.numel() else 0.0
    psnr = _psnr(float(err.square().mean()) if err.numel() else 0.0, tol.data_range)
    return Diff("", "", 0, "", max_abs, mean_abs, psnr, _judge(max_abs, mean_abs, psnr, tol))


def _psnr(mse: float, data_range: float) -> float:
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def _judge(max_abs: float, mean_abs: float, psnr: float, tol: Tolerance) -> tuple[str, ...]:
    # NaN compares False everywhere, so test "not within" rather than "above".
    failures = []
    if tol.max_abs is not None and not max_abs <= tol.max_abs:
        failures.append(f"max abs {max_abs:.3g} > {tol.max_abs:g}")
    if tol.mean_abs is not None and not mean_abs <= tol.mean_abs:
        failures.append(f"mean abs {mean_abs:.3g} > {tol.mean_abs:g}")
    if tol.min_psnr_db is not None and not psnr >= tol.min_psnr_db:
        failures.append(f"PSNR {psnr:.1f} dB < {tol.min_psnr_db:g} dB")
    return tuple(failures)


class Comparator:
    """Runs engines on the same seeded inputs and compares them to the first.

    Args:
        engines: the reference first, then one or more engines to check. All
            must take the reference's input names; their outputs are compared
            by name.
        tolerance: the default limits for every output.
        per_output: limits that override ``tolerance`` for named outputs.
        sampler: how to draw each input (see `default_sampler`).
        feeds: draws all inputs at once instead (see `FeedMaker`); when
            given, ``sampler`` is not used.
    """

    def __init__(
        self,
        engines: Sequence[Engine],
        tolerance: Tolerance | None = None,
        *,
        per_output: Mapping[str, Tolerance] | None = None,
        sampler: Sampler = default_sampler,
        feeds: FeedMaker | None = None,
    ) -> None:
        if len(engines) < 2:
            raise ValueError("a comparison needs a reference engine and at least one other")
        self.engines = tuple(engines)
        self.tolerance = tolerance or Tolerance()
        self.per_output = dict(per_output or {})
        self.sampler = sampler
        self.feeds = feeds

    def run(self, batch_sizes: Sequence[int] = (1,), seed: int = 0) -> ParityReport:
        """Compare at every batch size; the seed is offset per batch size."""
        rows: list[Diff] = []
        for i, batch in enumerate(batch_sizes):
            rows.extend(self._compare_batch(self.make_feeds(batch, seed + i), batch))
        return ParityReport(tuple(rows))

    def make_feeds(self, batch: int, seed: int) -> dict[str, torch.Tensor]:
        """The inputs `run` uses for ``batch`` and ``seed`` (CPU tensors)."""
        specs = self.engines[0].inputs
        if self.feeds is not None:
            return self.feeds(specs, batch, seed)
        return random_feeds(specs, batch, seed, self.sampler)

    def _compare_batch(self, feeds: Mapping[str, torch.Tensor], batch: int) -> list[Diff]:
        reference, *others = self.engines
        ref_out = _run_on_device(reference, feeds)
        rows = []
        for engine in others:
            out = _run_on_device(engine, feeds)
            for output, ref in ref_out.items():
                got = out.get(output)
                rows.append(self._diff(reference.name, engine.name, batch, output, ref, got))
        return rows

    def _diff(
        self,
        ref_name: str,
        name: str,
        batch: int,
        output: str,
        ref: torch.Tensor,
        got: torch.Tensor | None,
    ) -> Diff:
        if got is None:
            return Diff(
                name,
                ref_name,
                batch,
                output,
                math.inf,
                math.inf,
                -math.inf,
                (f"engine has no output {output!r}",),
            )
        d = compare_tensors(ref, got, self.per_output.get(output, self.tolerance))
        return Diff(name, ref_name, batch, output, d.max_abs, d.mean_abs, d.psnr_db, d.failures)


def _run_on_device(engine: Engine, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    device = engine.device
    placed = {k: v.to(device) for k, v in feeds.items()}
    # Engines such as TrtEngine return views into reused buffers: clone to keep them.
    return {k: v.detach().clone() for k, v in engine.run(placed).items()}


HALF_ULP = 2.0**-24
"""Relative size of one float32 rounding (half an ulp at 1.0)."""


def rounding_floor(
    engine: Engine, feeds: Mapping[str, torch.Tensor], *, draws: int = 3, seed: int = 0
) -> dict[str, float]:
    """How far float32 rounding alone moves ``engine``'s outputs, per output name.

    Every floating input is multiplied by ``1 + e`` with ``e = +-2^-24`` drawn
    per element (one rounding's worth of noise), ``draws`` times; the figure
    is the largest absolute change of each output. Two engines cannot be
    expected to agree more closely than this: a well-conditioned graph gives
    ~1e-6, a randomly initialised generator with large flows can give 1e-3.
    """
    base = _run_on_device(engine, feeds)
    gen = torch.Generator().manual_seed(seed)
    floor = dict.fromkeys(base, 0.0)
    for _ in range(draws):
        nudged = {k: _nudge(v, gen) for k, v in feeds.items()}
        for name, out in _run_on_device(engine, nudged).items():
            change = (out.double() - base[name].double()).abs().max()
            floor[name] = max(floor[name], float(change))
    return floor


def _nudge(tensor: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if not tensor.dtype.is_floating_point:
        return tensor
    signs = torch.randint(0, 2, tensor.shape, generator=gen).to(tensor.dtype) * 2 - 1
    return tensor * (1 + HALF_ULP * signs.to(tensor.device))


def above_floor(tolerance: Tolerance, floor: float, factor: float = 2.0) -> Tolerance:
    """``tolerance`` with ``max_abs`` raised to ``factor * floor`` when that is larger.

    A max-abs gate below the reference's own `rounding_floor` fails on
    rounding, not on a wrong graph; callers report the floor beside the gate.
    """
    if tolerance.max_abs is None or tolerance.max_abs >= factor * floor:
        return tolerance
    return replace(tolerance, max_abs=factor * floor)
