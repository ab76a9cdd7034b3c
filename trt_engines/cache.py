"""The TensorRT engine cache (pure Python; no TensorRT needed).

A serialized engine ("plan") only runs on the GPU architecture and TensorRT
version it was built with, and only means what its ONNX, precision, profile
and builder settings said. The cache key is the sha256 of a JSON dict of all
of those; plans are stored as ``<model>-<key[:16]>.plan`` beside a sidecar JSON
holding the full key fields (for humans and for a final check). A plan that
fails to deserialize, or whose sidecar is missing or disagrees, is a miss:
it is deleted and rebuilt. Builds run under a per-plan file lock so two
processes never build the same engine at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from trt_engines.profiles import ShapeRange, profile_key

log = logging.getLogger(__name__)

KEY_SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "fp32-notf32", "fp16-strong")
"""``fp32``: TF32 allowed; ``fp32-notf32``: strict FP32 (parity builds);
``fp16-strong``: an FP16-typed ONNX in a strongly typed network."""
HARDWARE_COMPAT = ("none", "ampere_plus", "same_compute_capability")

T = TypeVar("T")


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for: its name and compute capability (major, minor)."""

    name: str
    compute_capability: tuple[int, int]

    @property
    def slug(self) -> str:
        major, minor = self.compute_capability
        return f"{_slug(self.name)}-sm{major}{minor}"


@dataclass(frozen=True)
class BuilderKnobs:
    """Builder settings that change the plan.

    Attributes:
        optimization_level: TensorRT ``builder_optimization_level``, 0-5 (3 is
            TensorRT's default; higher searches longer for faster tactics).
        workspace_bytes: the WORKSPACE memory-pool limit.
        hardware_compat: ``"none"`` (fastest, this GPU architecture only),
            ``"ampere_plus"`` or ``"same_compute_capability"``.
    """

    optimization_level: int = 3
    workspace_bytes: int = 1 << 30
    hardware_compat: str = "none"

    def __post_init__(self) -> None:
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be 0-5, got {self.optimization_level}")
        if self.workspace_bytes <= 0:
            raise ValueError(f"workspace_bytes must be positive, got {self.workspace_bytes}")
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise ValueError(f"hardware_compat must be one of {HARDWARE_COMPAT}")


@dataclass(frozen=True)
class EngineKey:
    """Everything a plan depends on; `digest` is the cache key."""

    trt_version: str
    gpu: GpuInfo
    onnx_sha256: str
    onnx_data_sha256: str | None
    precision: str
    profile: dict[str, ShapeRange] = field(hash=False)
    knobs: BuilderKnobs = BuilderKnobs()

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def fields(self) -> dict[str, Any]:
        """The JSON-ready dict that is hashed (and written to the sidecar)."""
        return {
            "schema": KEY_SCHEMA_VERSION,
            "tensorrt": self.trt_version,
            "gpu": self.gpu.name,
            "compute_capability": list(self.gpu.compute_capability),
            "onnx_sha256": self.onnx_sha256,
            "onnx_data_sha256": self.onnx_data_sha256,
            "precision": self.precision,
            "profile": profile_key(self.profile),
            "optimization_level": self.knobs.optimization_level,
            "workspace_bytes": self.knobs.workspace_bytes,
            "hardware_compat": self.knobs.hardware_compat,
        }

    def digest(self) -> str:
        text = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_key(
    onnx_path: str | Path,
    *,
    trt_version: str,
    gpu: GpuInfo,
    precision: str,
    profile: dict[str, ShapeRange],
    knobs: BuilderKnobs | None = None,
) -> EngineKey:
    """The key for building ``onnx_path`` (and its ``.onnx.data`` weights, if any)."""
    onnx_path = Path(onnx_path)
    data = onnx_path.with_name(onnx_path.name + ".data")
    return EngineKey(
        trt_version=trt_version,
        gpu=gpu,
        onnx_sha256=file_sha256(onnx_path),
        onnx_data_sha256=file_sha256(data) if data.is_file() else None,
        precision=precision,
        profile=dict(profile),
        knobs=knobs or BuilderKnobs(),
    )


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EngineCache:
    """Plans, sidecars and timing caches under one directory.

    Args:
        root: the cache directory (created on first write). The caller picks
            it (e.g. a user cache dir); nothing here hard-codes a location.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def plan_path(self, model: str, key: EngineKey) -> Path:
        return self.root / f"{_slug(model)}-{key.digest()[:16]}.plan"

    def sidecar_path(self, model: str, key: EngineKey) -> Path:
        return self.plan_path(model, key).with_suffix(".json")

    def timing_cache_path(self, gpu: GpuInfo, trt_version: str) -> Path:
        """One timing cache per (GPU, TensorRT version), shared by all models."""
        return self.root / "timing" / f"{gpu.slug}-trt{_slug(trt_version)}.cache"

    def load(
        self, model: str, key: EngineKey, deserialize: Callable[[bytes], T | None]
    ) -> T | None:
        """The deserialized engine, or ``None`` on a miss (bad entries are deleted)."""
        plan, sidecar = self.plan_path(model, key), self.sidecar_path(model, key)
        if not plan.is_file():
            return None
        if self._sidecar_digest(sidecar) != key.digest():
            self._discard(model, key, "sidecar missing or for another key")
            return None
        try:
            engine = deserialize(plan.read_bytes())
        except Exception as exc:  # a corrupt plan may raise instead of returning None
            self._discard(model, key, f"deserialize raised {exc!r}")
            return None
        if engine is None:
            self._discard(model, key, "deserialize returned None")
        return engine

    def store(self, model: str, key: EngineKey, plan: bytes) -> Path:
        """Write the plan, then its sidecar (a plan without a sidecar is a miss)."""
        path = self.plan_path(model, key)
        atomic_write(path, plan)
        sidecar = {"key": key.digest(), "model": model, "fields": key.fields()}
        atomic_write(self.sidecar_path(model, key), json.dumps(sidecar, indent=2).encode())
        return path

    def get_or_build(
        self,
        model: str,
        key: EngineKey,
        build: Callable[[], bytes],
        deserialize: Callable[[bytes], T | None],
    ) -> T:
        """Load the cached engine or build, store and load it, under a file lock."""
        engine = self.load(model, key, deserialize)
        if engine is not None:
            return engine
        with self._lock(model, key):
            engine = self.load(model, key, deserialize)  # another process may have built it
            if engine is None:
                log.info("engine cache miss for %s (%s): building", model, key.digest()[:16])
                self.store(model, key, build())
                engine = self.load(model, key, deserialize)
        if engine is None:
            raise RuntimeError(
                f"a freshly built plan for {model!r} failed to deserialize; see the TensorRT log"
            )
        return engine

    def _lock(self, model: str, key: EngineKey) -> contextlib.AbstractContextManager[object]:
        from filelock import FileLock  # a dependency of torch, always present with it

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.plan_path(model, key).with_suffix(".lock")
        lock: contextlib.AbstractContextManager[object] = FileLock(str(path))
        return lock

    def _sidecar_digest(self, sidecar: Path) -> str | None:
        try:
            return str(json.loads(sidecar.read_text())["key"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _discard(self, model: str, key: EngineKey, why: str) -> None:
        log.warning("discarding cached engine %s: %s", self.plan_path(model, key).name, why)
        self.plan_path(model, key).unlink(missing_ok=True)
        self.sidecar_path(model, key).unlink(missing_ok=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "x"
