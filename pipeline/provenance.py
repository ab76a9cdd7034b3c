"""Where a figure was measured: the machine, the package versions and the load.

Benchmarks and the training study record this beside every figure they write.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """A short description of where a figure was measured."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }
    with contextlib.suppress(OSError):
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    info["versions"] = package_versions()
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
    return info


VERSIONED = ("vicocam", "torch", "onnxruntime", "numpy", "opencv-python", "av", "aiortc")


def package_versions() -> dict[str, str | None]:
    """Installed versions of what the figures depend on (``None``: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


__all__ = ["VERSIONED", "machine_info", "package_versions"]
