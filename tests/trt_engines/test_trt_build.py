"""Plan building and engine loading through the fake ``tensorrt`` module."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.trt_engines.fake_trt import (
    BuilderFlag,
    HardwareCompatibilityLevel,
    MemoryPoolType,
    Severity,
    make_fake_trt,
)
from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.cache import BuilderKnobs, EngineCache, GpuInfo
from trt_engines.parity import Comparator, Tolerance
from trt_engines.profiles import BatchRange, profile_for
from trt_engines.torch_engine import TorchEngine
from trt_engines.trt_build import (
    BuildOptions,
    BuildProgress,
    EngineBuildError,
    LogCapture,
    build_plan,
    make_logger,
)
from trt_engines.trt_engine import TrtSource, open_trt_engine

PROFILE = profile_for(INPUTS, BatchRange(1, 2, 4))
GPU = GpuInfo("Fake GPU", (8, 6))


@pytest.fixture
def fake():
    return make_fake_trt(ToyGenerator, OUTPUTS)


def test_build_configures_a_strongly_typed_fp32_parity_build(fake, toy_folded: Path):
    trt, state = fake
    knobs = BuilderKnobs(optimization_level=4, workspace_bytes=123 << 20)
    plan = build_plan(toy_folded, PROFILE, BuildOptions("fp32-notf32", knobs), trt=trt)
    assert plan.startswith(b"FAKEPLAN:")
    network, config = state.builds[-1]
    assert network.flags == 1 << 1  # the STRONGLY_TYPED bit
    assert BuilderFlag.TF32 not in config.flags
    assert config.pool_limits == {MemoryPoolType.WORKSPACE: 123 << 20}
    assert config.builder_optimization_level == 4
    assert config.hardware_compatibility_level == HardwareCompatibilityLevel.NONE
    assert config.profiles[0].shapes == {
        "feat": ((1, 4, 8, 8), (2, 4, 8, 8), (4, 4, 8, 8)),
        "latent": ((1, 6), (2, 6), (4, 6)),
    }


def test_tf32_stays_on_only_for_plain_fp32(fake, toy_folded: Path):
    trt, state = fake
    build_plan(toy_folded, PROFILE, BuildOptions("fp32"), trt=trt)
    assert BuilderFlag.TF32 in state.builds[-1][1].flags
    build_plan(toy_folded, PROFILE, BuildOptions("fp16-strong"), trt=trt)
    assert BuilderFlag.TF32 not in state.builds[-1][1].flags


def test_hardware_compat_level(fake, toy_folded: Path):
    trt, state = fake
    knobs = BuilderKnobs(hardware_compat="ampere_plus")
    build_plan(toy_folded, PROFILE, BuildOptions(knobs=knobs), trt=trt)
    assert (
        state.builds[-1][1].hardware_compatibility_level == HardwareCompatibilityLevel.AMPERE_PLUS
    )


def test_all_parser_errors_are_raised(fake, toy_folded: Path):
    trt, state = fake
    state.unsupported_ops = {"GridSample", "ConvTranspose"}
    with pytest.raises(EngineBuildError) as info:
        build_plan(toy_folded, PROFILE, BuildOptions(), trt=trt)
    text = str(info.value)
    assert "2 error(s)" in text and "GridSample" in text and "ConvTranspose" in text
    assert not state.builds


def test_a_none_plan_raises_with_the_captured_log(fake, toy_folded: Path):
    trt, state = fake
    state.fail_build = True
    with pytest.raises(EngineBuildError, match=r"failed to build(.|\n)*out of memory"):
        build_plan(toy_folded, PROFILE, BuildOptions(), trt=trt)


def test_profile_must_cover_every_dynamic_input(fake, toy_folded: Path):
    trt, _ = fake
    partial = {"feat": PROFILE["feat"]}
    with pytest.raises(EngineBuildError, match=r"'latent'.*no profile entry"):
        build_plan(toy_folded, partial, BuildOptions(), trt=trt)


def test_missing_onnx_is_a_clear_error(fake, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        build_plan(tmp_path / "nope.onnx", PROFILE, BuildOptions(), trt=fake[0])


def test_timing_cache_is_loaded_and_saved(fake, toy_folded: Path, tmp_path: Path):
    trt, state = fake
    timing = tmp_path / "timing" / "gpu.cache"
    options = BuildOptions(timing_cache=timing)
    build_plan(toy_folded, PROFILE, options, trt=trt)
    assert timing.read_bytes() == b"+timings"
    build_plan(toy_folded, PROFILE, options, trt=trt)
    assert timing.read_bytes() == b"+timings+timings"  # the old cache was loaded and extended
    state.reject_timing_cache = True  # e.g. a cache from another GPU
    build_plan(toy_folded, PROFILE, options, trt=trt)
    assert timing.read_bytes() == b"+timings"


def test_logger_captures_and_never_raises(fake):
    trt, _ = fake
    capture = LogCapture()
    logger = make_logger(trt, capture)
    logger.log(Severity.ERROR, "boom")
    logger.log(object(), "odd severity")

    class Broken(LogCapture):
        def add(self, severity, message):
            raise RuntimeError("capture failed")

    make_logger(trt, Broken()).log(Severity.ERROR, "still fine")
    assert capture.lines("ERROR") == ["[ERROR] boom"]
    assert "boom" in capture.tail()


def test_build_progress_reports_elapsed_time_from_the_clock():
    now = [100.0]
    lines: list[str] = []
    progress = BuildProgress("gen.onnx", interval_s=3600, clock=lambda: now[0], emit=lines.append)
    with progress:
        now[0] = 142.0
        assert "42 s elapsed" in progress.tick()
        now[0] = 190.5
    assert lines[0] == "building gen.onnx ..."
    assert lines[-1] == "building gen.onnx: finished after 90.5 s"


def test_open_builds_once_then_loads_from_the_cache(fake, toy_folded: Path, tmp_path: Path):
    trt, state = fake
    cache = EngineCache(tmp_path / "engines")
    source = TrtSource("toy", toy_folded, INPUTS, BatchRange(1, 2, 4))
    first = open_trt_engine(source, cache, "cpu", trt=trt, gpu=GPU)
    second = open_trt_engine(source, cache, "cpu", trt=trt, gpu=GPU)
    assert len(state.builds) == 1
    assert len(list((tmp_path / "engines").glob("toy-fp32-notf32-*.plan"))) == 1
    assert (tmp_path / "engines" / "timing").is_dir()
    reference = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    for engine in (first, second):
        engine._stream_handle = lambda: 7
        report = Comparator([reference, engine], Tolerance(max_abs=1e-6)).run((1, 4))
        assert report.passed, report.table()


def test_open_rebuilds_after_a_corrupt_plan_and_per_precision(fake, toy_folded, tmp_path):
    trt, state = fake
    cache = EngineCache(tmp_path)
    source = TrtSource("toy", toy_folded, INPUTS)
    open_trt_engine(source, cache, "cpu", trt=trt, gpu=GPU)
    (plan,) = tmp_path.glob("*.plan")
    plan.write_bytes(b"corrupt")
    open_trt_engine(source, cache, "cpu", trt=trt, gpu=GPU)
    assert len(state.builds) == 2
    fp16 = dataclasses.replace(source, options=BuildOptions("fp16-strong"))
    open_trt_engine(fp16, cache, "cpu", trt=trt, gpu=GPU)
    assert len(state.builds) == 3 and len(list(tmp_path.glob("*.plan"))) == 2
