"""The one inference interface every backend implements.

An `Engine` takes named input tensors and returns named output tensors, and
declares both as `TensorSpec`s so that callers (stages, the parity
`Comparator`, the TensorRT profile builder) can validate and size things before
the first frame. Backends are leaves: `TorchEngine` (the reference and test
double), `OrtEngine` and `TrtEngine`; stages never branch on which one they got.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import torch

DYNAMIC = None
"""Marks a dynamic dimension in `TensorSpec.shape`."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one engine input or output.

    Attributes:
        name: the graph tensor name (ONNX / TensorRT I/O name).
        shape: one entry per dim; ``None`` marks a dynamic dim. By convention
            the batch is the first dim and is the only dynamic one in our graphs.
        dtype: the exact torch dtype the engine consumes or produces
            (float32 unless stated: every graph we export is float32 at its I/O).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: torch.dtype = torch.float32

    @property
    def rank(self) -> int:
        return len(self.shape)

    def example(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A standard-normal tensor of this spec with every dynamic dim set to ``batch``.

        Made on the current default device, so under ``torch.device("meta")``
        it costs nothing (FLOP counting); parity checks use `parity.random_feeds`.
        """
        shape = tuple(batch if dim is None else dim for dim in self.shape)
        return torch.randn(shape, generator=generator, dtype=self.dtype)

    def describe(self) -> str:
        """Like ``feat[?,4,8,8] float32``; ``?`` is a dynamic dim."""
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}] {str(self.dtype).removeprefix('torch.')}"

    def matches_shape(self, shape: Sequence[int]) -> bool:
        """True when ``shape`` has this rank and agrees on every static dim."""
        if len(shape) != self.rank:
            return False
        return all(want is None or want == got for want, got in zip(self.shape, shape, strict=True))

    def concrete(self, batch: int) -> tuple[int, ...]:
        """This shape with the batch (dim 0) set; other dims must be static."""
        if self.rank == 0:
            raise ValueError(f"{self.describe()} is a scalar and has no batch dim")
        if self.shape[0] is not None and self.shape[0] != batch:
            raise ValueError(f"{self.describe()} has a static batch; cannot use batch {batch}")
        rest = self.shape[1:]
        if any(d is None for d in rest):
            raise ValueError(
                f"{self.describe()} has a dynamic non-batch dim; give its full shape explicitly"
            )
        return (batch, *(int(d) for d in rest if d is not None))


def validate_feeds(specs: Sequence[TensorSpec], feeds: Mapping[str, torch.Tensor]) -> None:
    """Raise one `ValueError` listing every feed that does not match ``specs``.

    Checks missing and unexpected names, rank, static dims and dtype. Devices
    are checked by the engines that care (TensorRT never copies host memory).
    """
    problems = _missing_and_unexpected(specs, feeds)
    for spec in specs:
        tensor = feeds.get(spec.name)
        if tensor is not None:
            problems.extend(_tensor_problems(spec, tensor))
    if problems:
        raise ValueError("invalid engine inputs:\n  " + "\n  ".join(problems))


def _missing_and_unexpected(
    specs: Sequence[TensorSpec], feeds: Mapping[str, torch.Tensor]
) -> list[str]:
    names = {s.name for s in specs}
    problems = [f"missing input {s.describe()}" for s in specs if s.name not in feeds]
    expected = ", ".join(sorted(names))
    problems += [
        f"unexpected input {name!r} (this engine takes: {expected})"
        for name in feeds
        if name not in names
    ]
    return problems


def _tensor_problems(spec: TensorSpec, tensor: torch.Tensor) -> list[str]:
    if not isinstance(tensor, torch.Tensor):
        return [f"input {spec.name!r} is a {type(tensor).__name__}, expected a torch.Tensor"]
    got = f"got shape {tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"
    expected = f"expected {spec.describe()}, {got}"
    problems = []
    if not spec.matches_shape(tensor.shape):
        problems.append(f"input {spec.name!r} has the wrong shape: {expected}")
    if tensor.dtype != spec.dtype:
        problems.append(f"input {spec.name!r} has the wrong dtype: {expected}")
    return problems


@runtime_checkable
class Engine(Protocol):
    """Named tensors in, named tensors out; see the module docstring.

    Attributes:
        name: identifies the engine in logs and parity reports.
        backend: the backend it runs on (a `BackendName` value; test doubles
            may name their own).
        device: where `run` wants its feeds and puts its outputs.
        shareable: whether several threads may call `run` at once (see
            `trt_engines.backends.SHAREABLE_BACKENDS`).
        inputs: what `run` accepts, in the graph's declared order.
        outputs: what `run` returns (as a dict keyed by these names).
    """

    name: str
    backend: str
    device: torch.device
    shareable: bool

    @property
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run one inference; raises `ValueError` on feeds that violate `inputs`."""
        ...

    def close(self) -> None:
        """Release the backend's resources; the engine is unusable afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class EngineBase(abc.ABC):
    """Shared plumbing: specs, the context manager and the closed-state check.

    Subclasses set `backend` and `shareable` (class attributes); the defaults
    describe an engine of unknown thread safety, which nobody shares.
    """

    backend: str = "custom"
    shareable: bool = False

    def __init__(
        self,
        name: str,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        device: torch.device | str = "cpu",
    ) -> None:
        self.name = name
        self.device = torch.device(device)
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)
        self._closed = False

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """See `Engine.run`."""

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"engine {self.name!r} is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self._inputs)
        outs = ", ".join(s.describe() for s in self._outputs)
        return f"{type(self).__name__}({self.name!r}: {ins} -> {outs})"
