"""The per-frame graphs: declared I/O, and ONNX opset-18 export with a dynamic batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from networks.config import get_config
from networks.generator import Generator
from networks.graphs import GenerateGraph, MotionGraph, TensorSpec
from networks.layers import ModulatedConv2d
from trt_engines.model_graphs import random_pictures


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(get_config("vicoface-64s")).eval()


@pytest.fixture(scope="module")
def graphs(generator) -> tuple[MotionGraph, GenerateGraph]:
    return MotionGraph(generator), GenerateGraph(generator)


def test_declared_inputs_and_outputs(graphs):
    motion, render = graphs
    assert motion.input_specs == (TensorSpec("driver", (None, 3, 64, 64)),)
    assert motion.output_specs == (TensorSpec("coeffs", (None, 30)),)
    names = [s.name for s in render.input_specs]
    assert names == ["latent", "alpha", "feat_0", "feat_1", "feat_2", "feat_3"]
    assert render.input_specs[0].shape == (None, 256)
    assert render.input_specs[5].shape == (None, 24, 64, 64)
    assert render.output_specs == (TensorSpec("image", (None, 3, 64, 64)),)


def test_graph_outputs_have_the_declared_shapes(graphs):
    for graph in graphs:
        with torch.no_grad():
            out = graph(*graph.example_inputs(batch=2))
        (spec,) = graph.output_specs
        assert out.shape == (2, *spec.shape[1:])


def test_generate_graph_uses_unfused_convs_and_frozen_basis(graphs):
    _, render = graphs
    convs = [m for m in render.modules() if isinstance(m, ModulatedConv2d)]
    assert convs and not any(c.fused for c in convs)
    assert render.dec.direction.frozen


def realistic_inputs(graph, enc, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Graph inputs as the pipeline makes them: encoder outputs of image-like pictures.

    Random weights fed white noise make the flow warping ill-conditioned (fp32
    rounding alone moves outputs by 1e-2); encoder features of smooth images
    keep torch-vs-fp64 differences near 1e-5, so 1e-4 tests the export.
    """
    size = graph.config.size
    if isinstance(graph, MotionGraph):
        return (random_pictures(batch, size, seed),)
    with torch.no_grad():
        latent, feats = enc.encode_appearance(random_pictures(1, size, seed))
        alpha = enc.encode_motion(random_pictures(batch, size, seed + 1))
    return (latent.expand(batch, -1), alpha, *(f.expand(batch, -1, -1, -1) for f in feats))


# torch 2.13 deprecates the TorchScript exporter; it is the one the TensorRT notes use.
EXPORT_WARNINGS = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1"),
]


def export_and_run(graph, enc, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / f"{type(graph).__name__}.onnx"
    with torch.no_grad():
        torch.onnx.export(
            graph, graph.example_inputs(1), str(path), dynamo=False, **graph.export_kwargs()
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 18)]
    grid_sample = [n for n in model.graph.node if n.op_type == "GridSample"]
    grid_sample_modes = [a.s for n in grid_sample for a in n.attribute if a.name == "mode"]
    expected_warps = graph.config.num_scales if isinstance(graph, GenerateGraph) else 0
    assert grid_sample_modes == [b"bilinear"] * expected_warps
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        inputs = realistic_inputs(graph, enc, batch, seed=batch)
        feeds = {s.name: t.numpy() for s, t in zip(graph.input_specs, inputs, strict=True)}
        (got,) = session.run(None, feeds)
        with torch.no_grad():
            expected = graph(*inputs).numpy()
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4


@EXPORT_WARNINGS[0]
@EXPORT_WARNINGS[1]
def test_motion_graph_exports_to_onnx_with_dynamic_batch(generator, graphs, tmp_path):
    export_and_run(graphs[0], generator.enc, tmp_path)


@EXPORT_WARNINGS[0]
@EXPORT_WARNINGS[1]
def test_generate_graph_exports_to_onnx_with_dynamic_batch(generator, graphs, tmp_path):
    export_and_run(graphs[1], generator.enc, tmp_path)
