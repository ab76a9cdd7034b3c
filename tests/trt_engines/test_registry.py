"""Backend selection, the refusal path without TensorRT/CUDA, and fallback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.errors import BackendUnavailableError, import_tensorrt
from trt_engines.ort_engine import OrtEngine
from trt_engines.parity import random_feeds
from trt_engines.registry import (
    Backend,
    EngineSource,
    available_backends,
    default_backends,
    open_engine,
    probe_tensorrt,
    select_backend,
)
from trt_engines.torch_engine import TorchEngine


@pytest.fixture
def no_trt_no_cuda(monkeypatch):
    """This machine's situation, made explicit so the tests hold on a GPU box too."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_probe_names_what_to_install(no_trt_no_cuda):
    reasons = probe_tensorrt()
    assert len(reasons) == 2
    assert "pip install 'vicocam[trt]'" in reasons[0]
    assert "no CUDA GPU is visible to torch" in reasons[1] and "CUDA build of PyTorch" in reasons[1]


def test_import_tensorrt_refuses_with_the_install_command(no_trt_no_cuda):
    with pytest.raises(ImportError, match=r"pip install 'vicocam\[trt\]'"):
        import_tensorrt()


def test_available_backends_without_tensorrt(no_trt_no_cuda):
    assert available_backends() == ["onnxruntime", "torch"]


def test_requesting_tensorrt_without_fallback_raises_a_clear_error(no_trt_no_cuda):
    with pytest.raises(BackendUnavailableError) as info:
        select_backend("tensorrt")
    assert info.value.backend == "tensorrt" and len(info.value.reasons) == 2
    assert "vicocam[trt]" in str(info.value)


def test_fallback_returns_the_next_backend_and_logs_why(no_trt_no_cuda, caplog):
    with caplog.at_level(logging.WARNING, logger="trt_engines.registry"):
        backend = select_backend("tensorrt", allow_fallback=True)
    assert backend.name == "onnxruntime"
    assert "falling back to 'onnxruntime'" in caplog.text and "vicocam[trt]" in caplog.text


def test_fallback_skips_every_unavailable_backend(caplog):
    down = Backend("fast", lambda: ["no fast"], lambda s: None)  # type: ignore[arg-type,return-value]
    also_down = Backend("mid", lambda: ["no mid"], lambda s: None)  # type: ignore[arg-type,return-value]
    up = Backend("slow", lambda: [], lambda s: None)  # type: ignore[arg-type,return-value]
    assert select_backend("fast", allow_fallback=True, backends=[down, also_down, up]) is up
    with pytest.raises(BackendUnavailableError, match="no fallback backend can run"):
        select_backend("fast", allow_fallback=True, backends=[down, also_down])


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'.*'tensorrt', 'onnxruntime'"):
        select_backend("cuda")


def test_available_backend_is_returned_as_is():
    assert select_backend("torch").name == "torch"
    assert [b.name for b in default_backends()] == ["tensorrt", "onnxruntime", "torch"]


def test_open_engine_builds_each_backend_from_one_source(no_trt_no_cuda, toy_folded: Path):
    source = EngineSource("toy", INPUTS, OUTPUTS, module=ToyGenerator, onnx_path=toy_folded)
    torch_engine = open_engine(source, "torch")
    ort_engine = open_engine(source, "tensorrt", allow_fallback=True)
    assert isinstance(torch_engine, TorchEngine) and isinstance(ort_engine, OrtEngine)
    feeds = random_feeds(INPUTS, 2)
    diff = (torch_engine.run(feeds)["image"] - ort_engine.run(feeds)["image"]).abs().max()
    assert float(diff) < 1e-4


def test_open_engine_reports_a_missing_artefact():
    with pytest.raises(ValueError, match=r"needs EngineSource\.module"):
        open_engine(EngineSource("toy", INPUTS, OUTPUTS), "torch")
