"""``vicocam model info`` and the model benchmark it shares its measurements with."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
import torch

from benchmarks.model import TimingPlan, run_model_bench, time_frames
from networks.flops import flops_per_frame, param_count
from networks.random_init import FLOW_GAIN
from pipeline.app.cli import main
from trt_engines.engine import EngineBase, TensorSpec

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
]


def test_model_info_prints_size_and_cpu_time_of_one_config(capsys):
    code = main(
        ["model", "info", "--config", "vicoface-64s", "--backends", "torch", "--repeats", "1"]
    )
    assert code == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["config", "params", "GFLOPs"] and "torch ms" in header
    fields = row.split()
    assert fields[0] == "vicoface-64s"
    assert fields[1] == f"{param_count('vicoface-64s'):,d}"
    assert float(fields[2]) == pytest.approx(flops_per_frame("vicoface-64s") / 1e9, abs=0.005)
    assert float(fields[3]) > 0
    assert fields[4:] == ["torch", "-"]  # fastest of one backend; no ONNX Runtime, no parity


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backends", "tensorrt"], "vicocam doctor --gpu"),
        (["--backends", "torch,tvm"], "unknown backend"),
        (["--config", "lia-1024"], "unknown configuration"),
    ],
)
def test_model_info_refuses_what_it_cannot_measure(argv, message, capsys):
    assert main(["model", "info", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_model_info_rejects_zero_repeats(capsys):
    assert main(["model", "info", "--repeats", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_timing_plan_fits_frames_to_the_budget():
    plan = TimingPlan(budget_s=10.0, min_repeats=2, max_repeats=200)
    assert plan.frames_for(1.5) == 6  # a 256 px model: a few frames
    assert plan.frames_for(5.0) == 2  # never fewer than min_repeats
    assert plan.frames_for(0.001) == 200  # a tiny model: capped
    assert TimingPlan(repeats=3).frames_for(0.001) == 3


class _Stub(EngineBase):
    """Returns zeros of its output specs and counts calls."""

    def __init__(self, name: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        super().__init__(name, inputs, outputs)
        self.calls = 0

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {s.name: torch.zeros(s.concrete(1)) for s in self.outputs}


def test_time_frames_times_each_graph_with_an_injected_clock():
    motion = _Stub("m", [TensorSpec("driver", (None, 3, 4, 4))], [TensorSpec("coeffs", (None, 2))])
    generate = _Stub(
        "g",
        [TensorSpec("latent", (None, 2)), TensorSpec("alpha", (None, 2))],
        [TensorSpec("image", (None, 3, 4, 4))],
    )
    ticks = itertools.count()

    def clock() -> float:  # each reading is 1 ms after the last
        return next(ticks) * 1e-3

    driver = {"driver": torch.zeros(1, 3, 4, 4)}
    avatar = {"latent": torch.zeros(1, 2)}
    figures = time_frames(motion, generate, driver, avatar, TimingPlan(budget_s=0.01), clock)
    # Warm-up frame: 2 ms, so the 10 ms budget gives 5 timed frames (+1 untimed).
    assert figures == {"ms_per_frame": 2.0, "motion_ms": 1.0, "generate_ms": 1.0, "frames": 5}
    assert motion.calls == generate.calls == 6


def test_model_bench_entry_holds_size_time_per_backend_and_parity():
    result = run_model_bench(seconds=0.5, configs=["lia-64s"])
    assert set(result) == {"lia-64s", "method"}
    entry = result["lia-64s"]
    assert entry["params"] == param_count("lia-64s")
    assert entry["gflops_per_frame"] == pytest.approx(flops_per_frame("lia-64s") / 1e9)
    assert set(entry["ms_per_frame"]) == {"torch", "onnxruntime"}
    assert all(ms > 0 for ms in entry["ms_per_frame"].values())
    fastest = min(entry["ms_per_frame"], key=entry["ms_per_frame"].get)
    assert entry["fastest_cpu_backend"] == fastest
    parity = entry["parity"]
    assert parity["batches"] == [1, 3]
    assert parity["image_max_abs_clamped"] <= parity["image_max_abs_raw"]
    assert parity["within_1e-4_raw"] == (parity["image_max_abs_raw"] <= 1e-4)
    assert parity["passed_floor_aware_gate"] is True
    assert parity["within_1e-4_raw"] is True
    raw_init = entry["parity_default_init"]
    assert raw_init["flow_gain"] == 1.0
    # LIA's raw initialisation is the worse-conditioned one: its own rounding floor is higher.
    assert raw_init["torch_rounding_floor"] > parity["torch_rounding_floor"]
    assert result["method"]["threads"] == 1
    assert result["method"]["flow_gain"] == FLOW_GAIN
