"""Backend selection by name, with an explicit fallback policy.

Stages ask for an engine by backend name (``"tensorrt"``, ``"onnxruntime"``,
``"torch"``) and an `EngineSource`; they never branch on the backend. When the
requested backend cannot run here (TensorRT not installed, no CUDA GPU), the
default is a `BackendUnavailableError` naming what to install; with
``allow_fallback=True`` the next available backend in `FALLBACK_ORDER` is used
and the reason is logged.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from trt_engines.backends import BackendName
from trt_engines.cache import EngineCache
from trt_engines.engine import Engine, TensorSpec
from trt_engines.errors import CUDA_TORCH_HINT, TRT_INSTALL_HINT, BackendUnavailableError
from trt_engines.ort_engine import ORT_HINT, OrtEngine, OrtOptions
from trt_engines.profiles import BatchRange
from trt_engines.torch_engine import TorchEngine
from trt_engines.trt_build import BuildOptions

if TYPE_CHECKING:
    from trt_engines.trt_engine import TrtSource

log = logging.getLogger(__name__)

FALLBACK_ORDER = tuple(BackendName)
"""Fastest first; a fallback moves right from the requested backend."""


@dataclass(frozen=True)
class EngineSource:
    """Everything any backend needs to make an engine for one graph.

    Attributes:
        name: the graph's name (logs, plan file names).
        inputs / outputs: the graph's I/O specs.
        device: where the caller keeps its tensors (``torch`` and ``tensorrt``
            run there; ``onnxruntime`` runs on the CPU and says so in
            ``engine.device``).
        module: builds the export-ready ``nn.Module`` (``torch`` backend).
        onnx_path: folded, linted ONNX (``onnxruntime``; ``tensorrt`` FP32).
        onnx_fp16_path: FP16-typed ONNX for ``precision="fp16-strong"``.
        batch: batch sizes a TensorRT engine must accept.
        trt_options: TensorRT precision and builder settings.
        cache_dir: TensorRT engine cache directory.
        ort_options: ONNX Runtime session options.
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    module: Callable[[], nn.Module] | None = None
    onnx_path: Path | None = None
    onnx_fp16_path: Path | None = None
    batch: BatchRange = field(default_factory=BatchRange)
    trt_options: BuildOptions = field(default_factory=BuildOptions)
    cache_dir: Path | None = None
    ort_options: OrtOptions = field(default_factory=OrtOptions)


@dataclass(frozen=True)
class Backend:
    """A named backend: ``probe()`` lists why it cannot run here (``[]`` = it can)."""

    name: str
    probe: Callable[[], list[str]]
    create: Callable[[EngineSource], Engine]


def probe_tensorrt() -> list[str]:
    """Reasons TensorRT cannot run here (the package, then CUDA), each with its remedy."""
    reasons = []
    try:
        importlib.import_module("tensorrt")
    except ImportError as exc:
        reasons.append(f"the TensorRT Python package is not importable ({exc}): {TRT_INSTALL_HINT}")
    return reasons + probe_cuda()


def probe_cuda() -> list[str]:
    """Why torch cannot compute on a CUDA GPU here (``[]``: it can), with the remedy."""
    if torch.cuda.is_available():
        return []
    build = torch.version.cuda or "none: a CPU-only build"
    return [f"no CUDA GPU is visible to torch {torch.__version__} (CUDA build: {build}): "
            f"{CUDA_TORCH_HINT}"]


def probe_onnxruntime() -> list[str]:
    try:
        importlib.import_module("onnxruntime")
    except ImportError as exc:
        return [f"onnxruntime is not importable ({exc}): {ORT_HINT}"]
    return []


def _create_torch(source: EngineSource) -> Engine:
    if source.module is None:
        raise ValueError(f"{source.name}: the torch backend needs EngineSource.module")
    return TorchEngine(
        source.module(),
        source.inputs,
        source.outputs,
        device=source.device,
        name=f"torch:{source.name}",
    )


def _create_onnxruntime(source: EngineSource) -> Engine:
    if source.onnx_path is None:
        raise ValueError(f"{source.name}: the onnxruntime backend needs EngineSource.onnx_path")
    return OrtEngine(
        source.onnx_path, options=source.ort_options, name=f"onnxruntime:{source.name}"
    )


def _create_tensorrt(source: EngineSource) -> Engine:
    from trt_engines.trt_engine import open_trt_engine

    return open_trt_engine(trt_source(source), trt_cache(source), source.device)


def trt_source(source: EngineSource) -> TrtSource:
    """What TensorRT builds for ``source``: the ONNX of its precision, its batch range,
    its builder options (together with the GPU and TensorRT version: the plan's key)."""
    from trt_engines.trt_engine import TrtSource

    fp16 = source.trt_options.precision == "fp16-strong"
    onnx_path = source.onnx_fp16_path if fp16 else source.onnx_path
    if onnx_path is None:
        raise ValueError(f"{source.name}: the tensorrt backend needs "
                         f"{'onnx_fp16_path' if fp16 else 'onnx_path'}")
    return TrtSource(source.name, onnx_path, source.inputs, source.batch, source.trt_options)


def trt_cache(source: EngineSource) -> EngineCache:
    """The plan cache of ``source`` (`ValueError` without a ``cache_dir``)."""
    if source.cache_dir is None:
        raise ValueError(f"{source.name}: the tensorrt backend needs cache_dir")
    return EngineCache(source.cache_dir)


def default_backends() -> tuple[Backend, ...]:
    """The three built-in backends in `FALLBACK_ORDER`."""
    return (
        Backend(BackendName.TENSORRT, probe_tensorrt, _create_tensorrt),
        Backend(BackendName.ONNXRUNTIME, probe_onnxruntime, _create_onnxruntime),
        Backend(BackendName.TORCH, lambda: [], _create_torch),
    )


def available_backends(backends: Sequence[Backend] | None = None) -> list[str]:
    """Names of the backends that can run on this machine, fastest first."""
    return [b.name for b in backends or default_backends() if not b.probe()]


def select_backend(
    requested: str,
    *,
    allow_fallback: bool = False,
    backends: Sequence[Backend] | None = None,
) -> Backend:
    """The requested backend, or (``allow_fallback``) the next one that can run.

    Raises `BackendUnavailableError` (with what to install) when the requested
    backend cannot run and no fallback is allowed or possible, and `ValueError`
    for an unknown name.
    """
    backends = tuple(backends or default_backends())
    names = [str(b.name) for b in backends]
    if requested not in names:
        raise ValueError(f"unknown backend {requested!r}; choose one of {names}")
    index = names.index(requested)
    reasons = backends[index].probe()
    if not reasons:
        return backends[index]
    if not allow_fallback:
        raise BackendUnavailableError(requested, reasons)
    for candidate in backends[index + 1 :]:
        if not candidate.probe():
            log.warning(
                "backend %r unavailable (%s); falling back to %r",
                str(requested),
                "; ".join(reasons),
                str(candidate.name),
            )
            return candidate
    raise BackendUnavailableError(requested, [*reasons, "and no fallback backend can run"])


def open_engine(
    source: EngineSource,
    backend: str,
    *,
    allow_fallback: bool = False,
    backends: Sequence[Backend] | None = None,
) -> Engine:
    """Select a backend (see `select_backend`) and create the engine for ``source``."""
    return select_backend(backend, allow_fallback=allow_fallback, backends=backends).create(source)
