"""What every benchmark shares: machine description and flat JSON output."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from pipeline.metrics import finite_json
from pipeline.provenance import machine_info


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
