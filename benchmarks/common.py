"""What every benchmark shares: machine description and flat JSON output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from pipeline.metrics import finite_json


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


def median_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for several runs: each numeric figure's median, its spread
    (``spread[key] = [min, max]``) and every run's figures under ``runs``.

    Non-numeric figures keep the first run's value (they describe the setup).
    """
    merged: dict[str, Any] = dict(runs[0])
    spread: dict[str, list[float]] = {}
    for key in runs[0]:
        values = [run.get(key) for run in runs]
        numbers = [float(v) for v in values if isinstance(v, int | float) and _numeric(v)]
        if len(numbers) == len(values):
            merged[key] = statistics.median(numbers)
            spread[key] = [min(numbers), max(numbers)]
    return {**merged, "spread": spread, "runs": runs}


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shared_media_dir() -> Path:
    """Real test media: ``$VICOCAM_SHARED/media``, else ``../shared/media`` beside the checkout.

    Benchmarks read the media in place; nothing is copied into the project.
    """
    explicit = os.environ.get("VICOCAM_SHARED")
    root = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "shared"
    return root / "media"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_result(figures: dict[str, Any], path: Path | None, *, name: str, command: str) -> str:
    """Serialise ``figures`` (flat) plus provenance; write to ``path`` if given."""
    record = {"benchmark": name, **figures, "command": command, "machine": machine_info()}
    text = json.dumps(finite_json(record), indent=2, default=_jsonable)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return text


def _jsonable(obj: object) -> object:
    if hasattr(obj, "item"):
        return obj.item()  # numpy scalars
    return str(obj)
