"""What the model's engines are made from: ONNX Runtime providers per device."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from trt_engines.backends import BackendName
from trt_engines.bundle import ModelSpec, ort_options
from trt_engines.ort_engine import OrtEngine, OrtOptions, provider_list


def test_onnx_runtime_asks_for_its_cuda_provider_on_a_cuda_device():
    cuda = ort_options(ModelSpec(device="cuda:1", backend=BackendName.ONNXRUNTIME, threads=2))
    assert cuda.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert cuda.cuda_device == 1 and cuda.intra_op_threads == 2
    assert provider_list(cuda) == [("CUDAExecutionProvider", {"device_id": 1}),
                                   "CPUExecutionProvider"]
    cpu = ort_options(ModelSpec())
    assert cpu.providers == ("CPUExecutionProvider",) and cpu.cuda_device is None
    assert provider_list(cpu) == ["CPUExecutionProvider"]


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_provider_onnx_runtime_cannot_load_is_named_in_the_log(toy_folded: Path, caplog):
    options = OrtOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
                         intra_op_threads=1, cuda_device=0)
    with caplog.at_level(logging.WARNING, logger="trt_engines.ort_engine"):
        engine = OrtEngine(toy_folded, options=options)  # this machine's ORT has no CUDA
    assert engine.providers == ["CPUExecutionProvider"]
    assert "could not use CUDAExecutionProvider" in caplog.text
    assert "onnxruntime-gpu" in caplog.text
