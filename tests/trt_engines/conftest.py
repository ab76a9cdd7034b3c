"""Fixtures for the engine tests: the toy graph, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.onnx_export import export_onnx, simplify_onnx


@pytest.fixture(scope="session")
def toy_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy graph exported at opset 18 (not yet constant-folded)."""
    path = tmp_path_factory.mktemp("onnx") / "toy.onnx"
    return export_onnx(ToyGenerator(), INPUTS, [s.name for s in OUTPUTS], path, max_batch=4)


@pytest.fixture(scope="session")
def toy_folded(toy_onnx: Path) -> Path:
    """The toy graph after constant folding."""
    dst = toy_onnx.with_name("toy.folded.onnx")
    simplify_onnx(toy_onnx, dst)
    return dst
