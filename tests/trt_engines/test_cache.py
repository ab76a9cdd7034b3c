"""Engine cache: key invalidation, files, and corrupt entries as misses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from trt_engines.cache import BuilderKnobs, EngineCache, EngineKey, GpuInfo, make_key
from trt_engines.profiles import ShapeRange

GPU = GpuInfo("NVIDIA GeForce RTX 4090", (8, 9))
PROFILE = {"x": ShapeRange((1, 3), (1, 3), (4, 3))}


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "gen.onnx"
    path.write_bytes(b"graph-bytes")
    return path


def key_for(onnx_file: Path, **overrides) -> EngineKey:
    args: dict[str, Any] = {
        "trt_version": "10.16.1.11",
        "gpu": GPU,
        "precision": "fp32-notf32",
        "profile": PROFILE,
        "knobs": BuilderKnobs(),
    }
    args.update(overrides)
    return make_key(onnx_file, **args)


def test_identical_inputs_give_the_same_key(onnx_file: Path):
    assert key_for(onnx_file).digest() == key_for(onnx_file).digest()
    # dict order of the profile does not matter
    two = {"b": ShapeRange((1,), (1,), (2,)), "a": ShapeRange((1,), (2,), (2,))}
    flipped = dict(reversed(list(two.items())))
    assert key_for(onnx_file, profile=two).digest() == key_for(onnx_file, profile=flipped).digest()


@pytest.mark.parametrize(
    "change",
    [
        {"trt_version": "10.16.1.12"},
        {"gpu": GpuInfo("NVIDIA GeForce RTX 3090", (8, 9))},
        {"gpu": GpuInfo("NVIDIA GeForce RTX 4090", (8, 6))},
        {"precision": "fp16-strong"},
        {"precision": "fp32"},
        {"profile": {"x": ShapeRange((1, 3), (2, 3), (4, 3))}},
        {"profile": {"x": ShapeRange((1, 3), (1, 3), (8, 3))}},
        {"profile": {"y": ShapeRange((1, 3), (1, 3), (4, 3))}},
        {"knobs": BuilderKnobs(optimization_level=5)},
        {"knobs": BuilderKnobs(workspace_bytes=2 << 30)},
        {"knobs": BuilderKnobs(hardware_compat="ampere_plus")},
    ],
)
def test_each_field_changes_the_key(onnx_file: Path, change):
    assert key_for(onnx_file).digest() != key_for(onnx_file, **change).digest()


def test_onnx_bytes_and_external_data_change_the_key(onnx_file: Path):
    base = key_for(onnx_file)
    assert base.onnx_data_sha256 is None
    data = onnx_file.with_name("gen.onnx.data")
    data.write_bytes(b"weights")
    with_data = key_for(onnx_file)
    data.write_bytes(b"weights2")
    with_other_data = key_for(onnx_file)
    onnx_file.write_bytes(b"graph-bytes2")
    other_graph = key_for(onnx_file)
    digests = {k.digest() for k in (base, with_data, with_other_data, other_graph)}
    assert len(digests) == 4


def test_schema_version_is_part_of_the_key(onnx_file: Path, monkeypatch):
    import trt_engines.cache as cache

    before = key_for(onnx_file).digest()
    monkeypatch.setattr(cache, "KEY_SCHEMA_VERSION", cache.KEY_SCHEMA_VERSION + 1)
    assert key_for(onnx_file).digest() != before


def test_invalid_key_fields_are_rejected(onnx_file: Path):
    with pytest.raises(ValueError, match="precision"):
        key_for(onnx_file, precision="int8")
    with pytest.raises(ValueError, match="optimization_level"):
        BuilderKnobs(optimization_level=6)
    with pytest.raises(ValueError, match="hardware_compat"):
        BuilderKnobs(hardware_compat="any")


def test_paths(onnx_file: Path, tmp_path: Path):
    cache = EngineCache(tmp_path / "engines")
    key = key_for(onnx_file)
    assert cache.plan_path("Generate Graph", key).name == f"generate-graph-{key.digest()[:16]}.plan"
    assert cache.sidecar_path("g", key).suffix == ".json"
    timing = cache.timing_cache_path(GPU, "10.16.1.11")
    assert timing.name == "nvidia-geforce-rtx-4090-sm89-trt10.16.1.11.cache"
    assert timing == cache.timing_cache_path(GPU, "10.16.1.11")
    assert timing != cache.timing_cache_path(GpuInfo(GPU.name, (9, 0)), "10.16.1.11")


class Builder:
    """Counts builds; the 'engine' is the plan bytes decoded."""

    def __init__(self, plan: bytes = b"PLAN") -> None:
        self.plan = plan
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.plan


def decode(blob: bytes) -> str | None:
    return blob.decode() if blob.startswith(b"PLAN") else None


def test_get_or_build_builds_once_then_hits(onnx_file: Path, tmp_path: Path):
    cache, key, build = EngineCache(tmp_path), key_for(onnx_file), Builder()
    assert cache.get_or_build("gen", key, build, decode) == "PLAN"
    assert cache.get_or_build("gen", key, build, decode) == "PLAN"
    assert build.calls == 1
    sidecar = json.loads(cache.sidecar_path("gen", key).read_text())
    assert sidecar["key"] == key.digest() and sidecar["fields"]["precision"] == "fp32-notf32"
    other = dataclasses.replace(key, precision="fp16-strong")
    cache.get_or_build("gen", other, build, decode)
    assert build.calls == 2


@pytest.mark.parametrize("damage", ["corrupt", "raises", "no-sidecar", "foreign-sidecar"])
def test_damaged_entries_are_misses_and_get_rebuilt(onnx_file: Path, tmp_path: Path, damage):
    cache, key, build = EngineCache(tmp_path), key_for(onnx_file), Builder()
    cache.get_or_build("gen", key, build, decode)
    plan, sidecar = cache.plan_path("gen", key), cache.sidecar_path("gen", key)
    deserialize = decode
    if damage == "corrupt":
        plan.write_bytes(b"garbage")
    elif damage == "raises":
        deserialize = lambda blob: (_ for _ in ()).throw(RuntimeError("bad magic"))  # noqa: E731
    elif damage == "no-sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text(json.dumps({"key": "0" * 64}))
    assert cache.load("gen", key, deserialize) is None
    assert not plan.exists() and not sidecar.exists()
    assert cache.get_or_build("gen", key, build, decode) == "PLAN"
    assert build.calls == 2


def test_a_fresh_plan_that_does_not_deserialize_raises(onnx_file: Path, tmp_path: Path):
    cache = EngineCache(tmp_path)
    with pytest.raises(RuntimeError, match=r"freshly built plan.*failed to deserialize"):
        cache.get_or_build("gen", key_for(onnx_file), Builder(b"junk"), decode)


def test_failed_build_leaves_no_plan(onnx_file: Path, tmp_path: Path):
    cache, key = EngineCache(tmp_path), key_for(onnx_file)

    def broken() -> bytes:
        raise RuntimeError("parser said no")

    with pytest.raises(RuntimeError, match="parser said no"):
        cache.get_or_build("gen", key, broken, decode)
    assert not cache.plan_path("gen", key).exists()
    assert not list(tmp_path.glob("*.tmp"))
