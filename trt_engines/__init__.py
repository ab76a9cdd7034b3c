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

Importing this package never imports tensorrt or touches CUDA.
"""

from trt_engines.engine import Engine, EngineBase, TensorSpec, validate_feeds
from trt_engines.errors import BackendUnavailableError
from trt_engines.ort_engine import OrtEngine, OrtOptions
from trt_engines.parity import Comparator, ParityReport, Tolerance
from trt_engines.registry import EngineSource, available_backends, open_engine, select_backend
from trt_engines.torch_engine import TorchEngine

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
