"""Names of the inference backends and precisions: plain enums, importable without torch.

The command line offers its choices from these (``vicocam --help`` must stay
instant), the engine registry keys its backends by them, and every `Engine`
carries its `BackendName`, so nobody parses a backend back out of a name.
"""

from __future__ import annotations

from enum import StrEnum


class BackendName(StrEnum):
    """An inference backend. Fastest first on a GPU: TensorRT, ONNX Runtime, PyTorch."""

    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"


class Precision(StrEnum):
    """The arithmetic a model's engines compute in.

    FP32: strict float32 everywhere (the parity reference).
    FP16: float16 TensorRT engines built from the FP16-typed graph; only
        TensorRT on a CUDA device runs it.
    """

    FP32 = "fp32"
    FP16 = "fp16"


CPU_BACKENDS: tuple[str, ...] = (BackendName.TORCH.value, BackendName.ONNXRUNTIME.value)
"""The backends that run on a CPU (what ``model info`` and ``bench model`` time)."""

SHAREABLE_BACKENDS = frozenset({BackendName.TORCH, BackendName.ONNXRUNTIME})
"""Backends whose engines several threads may call at once.

ONNX Runtime's ``run`` is thread-safe and returns new arrays; a torch module
in eval mode under ``inference_mode`` keeps no state between calls. A
TensorRT engine has one execution context and returns views of its own
buffers, valid until its next ``run``: two callers would overwrite each
other's outputs."""
