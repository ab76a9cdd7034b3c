"""Errors and lazy imports for optional backends.

Heavy and optional packages (``tensorrt``, ``cuda``) are imported only inside
the leaf modules that need them, through `require`, so that importing anything
in this package works on a machine with no GPU and a missing package fails
with an instruction instead of a ``NameError`` later.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TRT_INSTALL_HINT = (
    "pip install 'vicocam[trt]' (TensorRT 10.12+ for CUDA 12) beside a CUDA build of "
    "PyTorch"
)
CUDA_TORCH_HINT = (
    "install a CUDA build of PyTorch that matches your driver "
    "(see https://pytorch.org/get-started/locally/) and make sure `nvidia-smi` sees the GPU"
)


class BackendUnavailableError(RuntimeError):
    """A backend cannot run here; the message says why and what to install.

    Attributes:
        backend: the backend name (``"tensorrt"``, ``"onnxruntime"``, ...).
        reasons: one line per missing piece, each with its remedy.
    """

    def __init__(self, backend: str, reasons: list[str]) -> None:
        self.backend = backend
        self.reasons = list(reasons)
        super().__init__(f"backend {backend!r} is unavailable: " + "; ".join(self.reasons))


def require(module: str, install_hint: str) -> ModuleType:
    """Import ``module`` or raise `ImportError` naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module!r} could not be imported ({exc}); {install_hint}") from exc


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or an `ImportError` that says how to get it."""
    return require("tensorrt", TRT_INSTALL_HINT)
