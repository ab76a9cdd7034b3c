"""``vicocam doctor [--gpu]`` here (no GPU, no TensorRT) and the frame-latency runs of --gpu."""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Mapping

import pytest
import torch

from pipeline.app.cli import main
from stages.endpoints import endpoint_report
from trt_engines.engine import EngineBase, TensorSpec
from trt_engines.latency import FrameInputs, frame_latency, latency_table


@pytest.fixture
def no_trt_no_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_doctor_reports_the_stack_and_what_to_install(no_trt_no_cuda, capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for field in ("torch CUDA build", "TensorRT", "ORT providers", "Cameras", "Virtual cameras"):
        assert field in out
    assert "CPUExecutionProvider" in out
    assert "hint: TensorRT not importable: pip install 'vicocam[trt]'" in out
    assert "hint: no CUDA GPU visible to torch" in out


def test_doctor_gpu_refuses_with_the_reason_and_what_to_install(no_trt_no_cuda, capsys):
    assert main(["doctor", "--gpu"]) == 2
    captured = capsys.readouterr()
    assert "TensorRT" in captured.out  # the report still comes first
    assert "the GPU self-test needs TensorRT and a CUDA GPU" in captured.err
    assert "pip install 'vicocam[trt]'" in captured.err and "CUDA build of PyTorch" in captured.err
    assert "Traceback" not in captured.err


def test_doctor_prints_the_same_device_lines_as_devices(no_trt_no_cuda, capsys):
    assert main(["devices"]) == 0
    devices = capsys.readouterr().out
    assert main(["doctor"]) == 0
    assert devices in capsys.readouterr().out


def test_the_endpoint_report_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    lines = endpoint_report()
    assert "  backends: none (pip install 'vicocam[virtualcam]')" in lines


M = 3


class CountingMotion(EngineBase):
    """``coeffs`` = the call number in every column, so frames can be told apart."""

    def __init__(self) -> None:
        super().__init__("motion", [TensorSpec("driver", (None, 3, 4, 4))],
                         [TensorSpec("coeffs", (None, M))])  # fmt: skip
        self.count = itertools.count()

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"coeffs": torch.full((1, M), float(next(self.count)))}


class RecordingGenerate(EngineBase):
    """Records the ``alpha`` it is given; ``fail_at`` makes one call raise."""

    def __init__(self, fail_at: int | None = None) -> None:
        inputs = [TensorSpec("latent", (None, 2)), TensorSpec("alpha", (None, M))]
        super().__init__("generate", inputs, [TensorSpec("image", (None, 3, 4, 4))])
        self.alphas: list[float] = []
        self.fail_at = fail_at

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(self.alphas) == self.fail_at:
            raise RuntimeError("render failed")
        self.alphas.append(float(feeds["alpha"][0, 0]))
        return {"image": torch.zeros(1, 3, 4, 4)}


def _inputs() -> FrameInputs:
    return FrameInputs(torch.zeros(1, 3, 4, 4), {"latent": torch.zeros(1, 2)})


def _clock():
    lock, ticks = threading.Lock(), itertools.count()

    def clock() -> float:  # thread-safe: both stages read it
        with lock:
            return next(ticks) * 1e-3

    return clock


@pytest.mark.parametrize("mode", ["sequential", "overlapped"])
def test_frame_latency_renders_every_frame_in_order(mode):
    generate = RecordingGenerate()
    figures = frame_latency(
        CountingMotion(), generate, _inputs(), mode=mode, frames=12, warmup=2, clock=_clock()
    )
    assert generate.alphas == [float(i) for i in range(14)]  # warm-up then timed, in order
    assert figures.mode == mode and figures.frames == 12
    assert 0 < figures.latency_ms_p50 <= figures.latency_ms_p95 and figures.fps > 0
    assert mode in latency_table([figures])


def test_overlapped_run_raises_a_render_error_instead_of_hanging():
    with pytest.raises(RuntimeError, match="render failed"):
        frame_latency(CountingMotion(), RecordingGenerate(fail_at=3), _inputs(),
                      mode="overlapped", frames=10, warmup=0, clock=_clock())  # fmt: skip


def test_frame_latency_rejects_unknown_modes():
    with pytest.raises(ValueError, match="sequential"):
        frame_latency(CountingMotion(), RecordingGenerate(), _inputs(), mode="parallel")


def test_doctor_gpu_without_tensorrt_times_the_pytorch_engines_and_writes_json(
        monkeypatch, tmp_path, capsys):
    # A "GPU" that is the CPU: the probes say CUDA is there, TensorRT is not.
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr("trt_engines.registry.probe_cuda", lambda: [])
    out = tmp_path / "doctor.json"
    code = main(["doctor", "--gpu", "--device", "cpu", "--config", "vicoface-64s",
                 "--frames", "3", "--json", str(out)])  # fmt: skip
    assert code == 2
    captured = capsys.readouterr()
    assert "TensorRT self-test skipped" in captured.out
    assert "pip install 'vicocam[trt]'" in captured.out
    assert "end-to-end, PyTorch FP32" in captured.out and "install TensorRT" in captured.err
    figures = json.loads(out.read_text())
    assert set(figures["graphs_ms"]) == {"motion", "generate"}
    assert [r["mode"] for r in figures["latency"]["rows"]] == ["sequential", "overlapped"]
    assert figures["system"]["tensorrt"] is None and figures["tensorrt_skipped"]


def test_doctor_json_records_why_the_gpu_check_could_not_run(no_trt_no_cuda, tmp_path, capsys):
    out = tmp_path / "doctor.json"
    assert main(["doctor", "--gpu", "--json", str(out)]) == 2
    figures = json.loads(out.read_text())
    assert "needs TensorRT and a CUDA GPU" in figures["error"] and "system" in figures
