"""``vicocam engines build`` makes the TensorRT plans ``run`` and ``serve`` open (same keys).

TensorRT is the fake module of the engine tests: its builder records every
build and its plans deserialize, so a plan found in the cache shows as no new
build. The engines are opened by the commands' own code (`open_model_engines`
with the `ModelSpec` their arguments give), with only the execution context
left out (no GPU memory here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pipeline.app.cli import build_parser, main
from pipeline.app.commands.serve import serve_config
from pipeline.app.model_options import model_spec
from tests.trt_engines.fake_trt import make_fake_trt
from trt_engines import trt_engine
from trt_engines.bundle import load_weights, open_model_engines
from trt_engines.cache import GpuInfo

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

MODEL = ["--config", "vicoface-64s"]


class OpenedPlan:
    """Stands in for `TrtEngine` (which would allocate GPU buffers): records the plan's name."""

    backend = "tensorrt"

    def __init__(self, engine: object, *, device: torch.device, name: str, **_: object) -> None:
        self.engine, self.device, self.name = engine, device, name


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA GPU and TensorRT, as far as the build and the cache can tell."""
    pytest.importorskip("onnxconverter_common", reason="the FP16 graphs need onnxconverter-common")
    trt, state = make_fake_trt(torch.nn.Identity, ())
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(trt_engine, "gpu_info", lambda device: GpuInfo("Fake GPU", (8, 6)))
    monkeypatch.setattr(trt_engine, "TrtEngine", OpenedPlan)
    return state


def _open(argv: list[str], cache: Path) -> tuple[OpenedPlan, ...]:
    args = build_parser().parse_args([*argv, *MODEL, "--cache", str(cache)])
    spec = serve_config(args).model if argv[0] == "serve" else model_spec(args)
    return open_model_engines(load_weights(spec).reenactor, spec)  # type: ignore[return-value]


def test_run_and_serve_open_the_plans_engines_build_made(fake_gpu, tmp_path: Path, capsys):
    assert main(["engines", "build", *MODEL, "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert len(fake_gpu.builds) == 2 and "fp16-strong, batch 1..4" in out
    assert "'vicocam run --device cuda:0'" in out and "--max-sessions 4'" in out
    for argv in (["run", "--device", "cuda:0"], ["serve", "--device", "cuda:0"]):
        motion, generate = _open(argv, tmp_path)
        assert (motion.name, generate.name) == ("tensorrt:motion:vicoface-64s",
                                                "tensorrt:generate:vicoface-64s")
        assert len(fake_gpu.builds) == 2, f"{argv[0]} built its own plans"


def test_the_batch_maximum_and_the_precision_are_part_of_the_key(fake_gpu, tmp_path: Path):
    assert main(["engines", "build", *MODEL, "--cache", str(tmp_path), "--max-batch", "6"]) == 0
    _open(["serve", "--device", "cuda:0", "--max-sessions", "6"], tmp_path)
    assert len(fake_gpu.builds) == 2  # serve's session limit is the engines' batch maximum
    _open(["run", "--device", "cuda:0"], tmp_path)
    assert len(fake_gpu.builds) == 4  # batch 1..4: other plans
    _open(["run", "--device", "cuda:0", "--precision", "fp32"], tmp_path)
    assert len(fake_gpu.builds) == 6  # strict FP32: other plans again
    profiles = [config.profiles[0].shapes["driver"] for _, config in fake_gpu.builds[::2]]
    assert [p[2][0] for p in profiles] == [6, 4, 4]  # the profile's max batch
