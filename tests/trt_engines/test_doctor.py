"""System report and the GPU self-test (its refusal here, its logic with stand-ins)."""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from tests.trt_engines.test_parity import PerturbedEngine
from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.doctor import (
    BenchConfig,
    SelfTestGraph,
    SelfTestTable,
    gpu_selftest,
    system_report,
)
from trt_engines.engine import EngineBase
from trt_engines.errors import BackendUnavailableError
from trt_engines.onnx_fp16 import convert_to_fp16
from trt_engines.ort_engine import OrtEngine, OrtOptions
from trt_engines.profiles import BatchRange
from trt_engines.streams import CpuStream
from trt_engines.torch_engine import TorchEngine

BATCH = BatchRange(1, 2, 3)


@pytest.fixture
def no_trt_no_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_report_lists_the_stack_and_what_to_install(no_trt_no_cuda):
    report = system_report(lambda: ["/dev/video0 Fake Cam"], driver_version=lambda: None)
    assert report.cuda_available is False and report.gpus == () and report.tensorrt is None
    assert report.torch == torch.__version__
    assert "CPUExecutionProvider" in report.ort_providers
    assert report.cameras == ("/dev/video0 Fake Cam",)
    assert any("vicocam[trt]" in h for h in report.hints)
    assert any("no CUDA GPU" in h for h in report.hints)
    text = report.format()
    assert "TensorRT" in text and "hint:" in text and "Fake Cam" in text
    assert report.as_dict()["cameras"] == ("/dev/video0 Fake Cam",)


def test_report_survives_a_failing_camera_probe_and_hints_at_no_camera(no_trt_no_cuda):
    def broken() -> list[str]:
        raise OSError("permission denied")

    failed = system_report(broken, driver_version=lambda: "550.1")
    assert failed.cameras is None and "permission denied" in (failed.camera_error or "")
    assert failed.driver == "550.1"
    empty = system_report(lambda: [], driver_version=lambda: None)
    assert any("no camera found" in h for h in empty.hints)
    assert system_report(driver_version=lambda: None).cameras is None


def test_gpu_selftest_refuses_without_tensorrt_and_cuda(no_trt_no_cuda, tmp_path: Path):
    graph = SelfTestGraph("toy", tmp_path / "toy.onnx", lambda: None, INPUTS)  # type: ignore[arg-type,return-value]
    with pytest.raises(BackendUnavailableError) as info:
        gpu_selftest([graph], tmp_path)
    message = str(info.value)
    assert "vicocam[trt]" in message and "no CUDA GPU" in message


class BoundedEngine(EngineBase):
    """Stand-in for a TensorRT engine: enforces the profile's max batch."""

    def __init__(self, inner: EngineBase, max_batch: int) -> None:
        super().__init__(inner.name, inner.inputs, inner.outputs)
        self.inner, self.max_batch = inner, max_batch

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if any(t.shape[0] > self.max_batch for t in feeds.values()):
            raise ValueError("batch outside the profile")
        return self.inner.run(feeds)


def reference() -> TorchEngine:
    return TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")


def ort_opener(wrap=lambda e: BoundedEngine(e, BATCH.max)):
    def open_engine(graph: SelfTestGraph, precision: str, cache_dir: Path):
        path = graph.onnx_path
        if precision == "fp16-strong":
            path = cache_dir / "toy.fp16.onnx"
            convert_to_fp16(graph.onnx_path, path)
        return wrap(OrtEngine(path, options=OrtOptions(intra_op_threads=1)))

    return open_engine


def fake_clock():
    ticks = itertools.count()
    return lambda: next(ticks) * 0.01  # each read advances 10 ms


def run_selftest(toy_folded: Path, tmp_path: Path, opener) -> SelfTestTable:
    pytest.importorskip("onnxconverter_common", reason="the FP16 path needs onnxconverter-common")
    graph = SelfTestGraph("toy", toy_folded, reference, INPUTS, BATCH)
    return gpu_selftest(
        [graph],
        tmp_path,
        device="cpu",
        readiness=lambda: [],
        open_engine=opener,
        bench=BenchConfig(iterations=2, warmup=1, clock=fake_clock()),
    )


def test_gpu_selftest_gates_precisions_and_times_each_graph(toy_folded: Path, tmp_path: Path):
    table = run_selftest(toy_folded, tmp_path, ort_opener())
    assert table.passed, table.format()
    fp32, fp16 = table.rows
    assert (fp32.precision, fp16.precision) == ("fp32-notf32", "fp16-strong")
    assert fp32.max_abs <= 1e-3 and fp16.mean_abs <= 5e-3 and fp16.psnr_db >= 35
    assert fp16.max_abs > fp32.max_abs
    assert fp32.ms_engine == pytest.approx(5.0) and fp32.ms_reference == pytest.approx(5.0)
    assert "toy" in table.format() and "ok" in table.format()


def test_gpu_selftest_fails_a_wrong_engine(toy_folded: Path, tmp_path: Path):
    def perturbed(engine):
        return BoundedEngine(PerturbedEngine(engine, "image", 5.0), BATCH.max)

    table = run_selftest(toy_folded, tmp_path, ort_opener(perturbed))
    assert not table.passed
    assert all("max abs" in r.detail or "PSNR" in r.detail for r in table.rows)


def test_gpu_selftest_fails_an_engine_that_accepts_out_of_profile_batches(toy_folded, tmp_path):
    table = run_selftest(toy_folded, tmp_path, ort_opener(wrap=lambda e: e))
    assert not table.passed
    assert all(r.detail == "batch above the profile was not refused" for r in table.rows)


@pytest.mark.needs_cuda
@pytest.mark.needs_tensorrt
def test_gpu_selftest_on_a_real_gpu(toy_folded: Path, tmp_path: Path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: torch.cuda.is_available() is False")
    pytest.importorskip("tensorrt", reason="needs TensorRT: pip install 'vicocam[trt]'")
    device = torch.device("cuda", 0)

    def gpu_reference() -> TorchEngine:
        return TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device=device)

    graph = SelfTestGraph("toy", toy_folded, gpu_reference, INPUTS, BATCH)
    table = gpu_selftest(
        [graph], tmp_path / "engines", device=device, bench=BenchConfig(iterations=20, warmup=3)
    )
    assert table.passed, table.format()


class RecordingStream(CpuStream):
    """The CPU stand-in, noting whether it is the active stream."""

    def __init__(self, clock) -> None:
        super().__init__(clock=clock)
        self.active = False

    @contextlib.contextmanager
    def activate(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False


class StreamCheckingEngine(EngineBase):
    """Wraps an engine and records, per call, whether its stream was the active one."""

    def __init__(self, inner: EngineBase, streams: list[RecordingStream]) -> None:
        super().__init__(inner.name, inner.inputs, inner.outputs)
        self.inner, self.streams, self.calls_active = inner, streams, []

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.calls_active.append(any(s.active for s in self.streams))
        return self.inner.run(feeds)


def test_gpu_selftest_checks_and_times_every_call_on_a_stream_of_its_own(toy_folded, tmp_path):
    streams: list[RecordingStream] = []
    engines: list[StreamCheckingEngine] = []

    def make(device, clock):
        streams.append(RecordingStream(clock))
        return streams[-1]

    def opener(wrap):
        def open_engine(graph, precision, cache_dir):
            engines.append(StreamCheckingEngine(wrap(reference()), streams))
            return engines[-1]
        return open_engine

    graph = SelfTestGraph("toy", toy_folded, reference, INPUTS, BATCH)
    bench = BenchConfig(iterations=3, warmup=1, clock=fake_clock(), stream=make)
    table = gpu_selftest([graph], tmp_path, device="cpu", precisions=("fp32-notf32",),
                         readiness=lambda: [], open_engine=opener(lambda e: BoundedEngine(e, 3)),
                         bench=bench)  # fmt: skip
    assert len(streams) == 1 and engines[0].calls_active and all(engines[0].calls_active)
    assert table.rows[0].ms_engine == pytest.approx(10 / 3)  # one 10 ms tick between the events
