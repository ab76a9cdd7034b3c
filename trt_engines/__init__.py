"""Inference engines behind one interface, and the TensorRT tool chain.

- `Engine` / `TensorSpec` (engine.py): named tensors in, named tensors out.
- Backends: `TorchEngine` (reference, test double), `OrtEngine` (ONNX Runtime),
  `TrtEngine` (trt_engine.py; TensorRT is imported lazily there).
- `registry.open_engine(source, "tensorrt", allow_fallback=True)`: pick a
  backend by name; without TensorRT/CUDA either a clear error or a logged
  fallback.
- ONNX: `onnx_export.export_onnx` (opset 18, dynamic batch), `lint_onnx`,
  `simplify_onnx`; `onnx_fp16.convert_to_fp16` for strongly typed FP16.
- `parity.Comparator`: the same seeded inputs through several engines.
- TensorRT: `trt_build.build_plan`, `cache.EngineCache`, `profiles`,
  `streams` (CUDA stream/event plumbing with a CPU stand-in), and
  `doctor.system_report` / `doctor.gpu_selftest`.

Importing this package never imports tensorrt or touches CUDA, and does not
import torch either until one of the names below is used: the command line
reads `trt_engines.backends` on every start and must stay instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trt_engines.engine import Engine, EngineBase, TensorSpec, validate_feeds
    from trt_engines.errors import BackendUnavailableError
    from trt_engines.ort_engine import OrtEngine, OrtOptions
    from trt_engines.parity import Comparator, ParityReport, Tolerance
    from trt_engines.registry import (
        EngineSource,
        available_backends,
        open_engine,
        select_backend,
    )
    from trt_engines.torch_engine import TorchEngine

_HOMES = {
    "BackendUnavailableError": "trt_engines.errors",
    "Comparator": "trt_engines.parity",
    "Engine": "trt_engines.engine",
    "EngineBase": "trt_engines.engine",
    "EngineSource": "trt_engines.registry",
    "OrtEngine": "trt_engines.ort_engine",
    "OrtOptions": "trt_engines.ort_engine",
    "ParityReport": "trt_engines.parity",
    "TensorSpec": "trt_engines.engine",
    "Tolerance": "trt_engines.parity",
    "TorchEngine": "trt_engines.torch_engine",
    "available_backends": "trt_engines.registry",
    "open_engine": "trt_engines.registry",
    "select_backend": "trt_engines.registry",
    "validate_feeds": "trt_engines.engine",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trt_engines' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


__all__ = [
    "BackendUnavailableError",
    "Comparator",
    "Engine",
    "EngineBase",
    "EngineSource",
    "OrtEngine",
    "OrtOptions",
    "ParityReport",
    "TensorSpec",
    "Tolerance",
    "TorchEngine",
    "available_backends",
    "open_engine",
    "select_backend",
    "validate_feeds",
]
