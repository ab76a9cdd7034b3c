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

    Figures nested in dicts (per stage, per condition) get their medians the
    same way, their spreads under the dotted path (``spread["a.b"]``).
    Non-numeric figures keep the first run's value (they describe the setup).
    """
    spread: dict[str, list[float]] = {}
    merged = _merge(runs, "", spread)
    return {**merged, "spread": spread, "runs": runs}


def _merge(records: list[dict[str, Any]], prefix: str,
           spread: dict[str, list[float]]) -> dict[str, Any]:
    merged: dict[str, Any] = dict(records[0])
    for key in records[0]:
        values = [record.get(key) for record in records]
        path = f"{prefix}{key}"
        if all(_numeric(v) for v in values):
            numbers = [float(v) for v in values]  # type: ignore[arg-type]
            merged[key] = statistics.median(numbers)
            spread[path] = [min(numbers), max(numbers)]
        elif all(isinstance(v, dict) for v in values):
            merged[key] = _merge(values, f"{path}.", spread)  # type: ignore[arg-type]
    return merged


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
