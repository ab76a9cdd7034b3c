"""`OrtEngine`: an ONNX Runtime backend (CPU by default).

``onnxruntime`` is a core dependency but is still imported lazily so that
importing `trt_engines` stays cheap. On a GPU machine ``onnxruntime-gpu``
(in place of ``onnxruntime``) adds the CUDA provider; ORT silently drops a
provider it cannot load, so `make_session` says so in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trt_engines.backends import BackendName
from trt_engines.engine import EngineBase, TensorSpec, validate_feeds
from trt_engines.errors import require

ORT_HINT = "pip install onnxruntime (CPU) or onnxruntime-gpu"
CUDA_PROVIDER = "CUDAExecutionProvider"

log = logging.getLogger(__name__)

ORT_TYPES: dict[str, torch.dtype] = {
    "tensor(float)": torch.float32,
    "tensor(float16)": torch.float16,
    "tensor(double)": torch.float64,
    "tensor(int64)": torch.int64,
    "tensor(int32)": torch.int32,
    "tensor(int8)": torch.int8,
    "tensor(uint8)": torch.uint8,
    "tensor(bool)": torch.bool,
}


@dataclass(frozen=True)
class OrtOptions:
    """How to open an ONNX Runtime session.

    Attributes:
        providers: execution providers in priority order. Always explicit:
            ORT's own default list starts with the Azure provider.
        intra_op_threads: threads for one op; ``None`` lets ORT decide (all
            cores), which on a shared machine is rarely what you want.
        graph_optimization: ``"all"`` (default), ``"extended"``, ``"basic"``
            or ``"disabled"``.
        cuda_device: the GPU index the CUDA provider runs on (``None``:
            ORT's default, GPU 0).
    """

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int | None = None
    graph_optimization: str = "all"
    cuda_device: int | None = None


def make_session(model: str | Path | bytes, options: OrtOptions) -> Any:
    """An ``onnxruntime.InferenceSession`` for a model path or serialized bytes."""
    ort = require("onnxruntime", ORT_HINT)
    sess_options = ort.SessionOptions()
    if options.intra_op_threads is not None:
        sess_options.intra_op_num_threads = options.intra_op_threads
    sess_options.graph_optimization_level = _optimization_level(ort, options.graph_optimization)
    source = model if isinstance(model, bytes) else str(model)
    if CUDA_PROVIDER in options.providers:
        _preload_cuda_libraries(ort)
    session = ort.InferenceSession(source, sess_options, providers=provider_list(options))
    _warn_dropped(options.providers, session.get_providers())
    return session


def provider_list(options: OrtOptions) -> list[str | tuple[str, dict[str, Any]]]:
    """The ``providers`` argument of ``InferenceSession``: names, the CUDA one with its GPU."""
    return [
        (name, {"device_id": options.cuda_device})
        if name == CUDA_PROVIDER and options.cuda_device is not None else name
        for name in options.providers
    ]


def _preload_cuda_libraries(ort: Any) -> None:
    """Let ORT find CUDA/cuDNN (from the pip packages torch brought) before a CUDA session."""
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime-gpu 1.21+
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # the session below then says what is missing
        log.warning("onnxruntime.preload_dlls() failed: %s", exc)


def _warn_dropped(asked: tuple[str, ...], used: list[str]) -> None:
    dropped = [p for p in asked if p not in used]
    if dropped:
        log.warning("ONNX Runtime could not use %s (running on %s); for the CUDA provider "
                    "install onnxruntime-gpu in place of onnxruntime, for the CUDA and cuDNN "
                    "versions of your torch build", ", ".join(dropped), ", ".join(used))


def _optimization_level(ort: Any, name: str) -> Any:
    levels = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if name not in levels:
        raise ValueError(f"graph_optimization must be one of {sorted(levels)}, got {name!r}")
    return levels[name]


def spec_from_ort(arg: Any) -> TensorSpec:
    """A `TensorSpec` from an ORT ``NodeArg``; symbolic dims become ``None``."""
    if arg.type not in ORT_TYPES:
        raise ValueError(f"tensor {arg.name!r} has unsupported ONNX type {arg.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(arg.name, shape, ORT_TYPES[arg.type])


class OrtEngine(EngineBase):
    """Runs an ONNX model with ONNX Runtime; specs are read from the session.

    CPU tensors cross into numpy and back without copies when they are
    contiguous; tensors on another device are copied to the host first (this
    backend is the portable fallback, not the GPU fast path).
    """

    backend: str = BackendName.ONNXRUNTIME
    shareable: bool = True

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        options: OrtOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.options = options or OrtOptions()
        self._session = make_session(model, self.options)
        inputs = [spec_from_ort(a) for a in self._session.get_inputs()]
        outputs = [spec_from_ort(a) for a in self._session.get_outputs()]
        default = Path(model).stem if not isinstance(model, bytes) else "onnx"
        super().__init__(name or f"onnxruntime:{default}", inputs, outputs)

    @property
    def providers(self) -> list[str]:
        """Providers the session actually uses (ORT drops unavailable ones)."""
        return list(self._session.get_providers())

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_open()
        validate_feeds(self.inputs, feeds)
        arrays = {s.name: _to_numpy(feeds[s.name]) for s in self.inputs}
        names = [s.name for s in self.outputs]
        results: Sequence[np.ndarray] = self._session.run(names, arrays)
        return {
            n: torch.from_numpy(np.ascontiguousarray(r))
            for n, r in zip(names, results, strict=True)
        }

    def close(self) -> None:
        super().close()
        self._session = None


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    # .numpy() shares memory with a contiguous CPU tensor: no copy on the CPU path.
    host = tensor.detach()
    if host.device.type != "cpu":
        host = host.cpu()
    return host.contiguous().numpy()
