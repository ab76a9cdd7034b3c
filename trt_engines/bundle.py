"""A model ready to run: weights, the two per-frame engines, and where they came from.

A `ModelBundle` holds a `Reenactor` (used once per avatar, to encode the
portrait) and two `Engine`s for the per-frame work: ``motion`` (driver crop
``[B, 3, S, S]`` -> ``coeffs [B, M]``) and ``generate`` (``latent``,
``alpha``, ``feat_0..`` -> ``image [B, 3, S, S]``). Stages only see the
engines, never the backend behind them.

Every command that takes a model describes it with one `ModelSpec`
(checkpoint or configuration, backend, device, threads, precision, largest
batch) and loads it with `open_bundle` (weights and engines) or
`load_weights` (weights only).
Weights come from a checkpoint, by default the demo model bundled under
``networks/pretrained/`` when it is present; a configuration name instead
builds that model with random weights, and the bundle says so (``trained`` is
``False``), so nothing downstream can pretend. The bundle also carries what
the weights were trained on (``domain``, from the checkpoint), so the
commands can warn when a model of the synthetic world meets real faces.

ONNX-based backends export the graphs once per weights into the cache folder
(`default_cache_dir`, named by `weights_digest`). `engine_sources` is the one
place that says what each engine is made from (ONNX file, precision, batch
range from `engine_batch`, builder options): ``vicocam run``/``serve`` open
their engines from it and ``vicocam engines build`` builds its TensorRT plans
from it, so both compute the same plan keys and a run finds the plans a
build made.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from networks.avatar import Reenactor
from networks.checkpoint import TrainingDomain
from networks.config import ModelConfig, get_config
from networks.graphs import GenerateGraph, MotionGraph
from networks.motion import MotionMode, default_mode
from trt_engines.backends import BackendName, Precision
from trt_engines.engine import Engine, TensorSpec
from trt_engines.graph_export import GraphCase
from trt_engines.model_graphs import model_cases
from trt_engines.ort_engine import OrtOptions
from trt_engines.profiles import BatchRange
from trt_engines.registry import EngineSource, open_engine, select_backend
from trt_engines.torch_engine import TorchEngine

log = logging.getLogger(__name__)

DEFAULT_RANDOM_CONFIG = "vicoface-64s"
"""The configuration built with random weights when no checkpoint is available."""

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
BUNDLED_NAME = "vicoface-64s-world.safetensors"
"""The demo model the training work ships under ``networks/pretrained/``."""

DEFAULT_MAX_BATCH = 4
"""The live engines' largest batch unless a command says otherwise: ``vicocam
serve``'s default session limit (one engine call may carry a frame of every
session) and ``vicocam engines build``'s default ``--max-batch``."""

DEFAULT_CPU_BACKEND = BackendName.ONNXRUNTIME
"""The CPU default, measured with ``vicocam bench backends`` (vicoface-64s, one
intra-op thread, p50 of 60 calls, 2-core x86 CPU shared with other jobs):
ONNX Runtime 3.4 ms to encode a driver crop and 3.9 ms to render, PyTorch
eager 9.7 ms and 8.6 ms. Falls back to torch when onnxruntime is missing."""


@dataclass(frozen=True, slots=True, eq=False)
class ModelBundle:
    """One model ready for the avatar path.

    Attributes:
        reenactor: encodes avatars (once each) and renders their rest picture.
        motion: the driver-encoding engine (input ``driver``, output ``coeffs``).
        generate: the rendering engine (inputs ``latent``, ``alpha``,
            ``feat_k``; output ``image``).
        label: where the weights came from, for logs and the run summary.
        trained: ``False`` for randomly initialised weights.
        domain: what the weights were trained on; ``None`` for random weights.
    """

    reenactor: Reenactor
    motion: Engine
    generate: Engine
    label: str
    trained: bool
    domain: TrainingDomain | None = None

    @property
    def config(self) -> ModelConfig:
        return self.reenactor.config

    @property
    def size(self) -> int:
        return self.reenactor.config.size

    @property
    def default_mode(self) -> MotionMode:
        return default_mode(self.reenactor.config.family)

    @property
    def device(self) -> torch.device:
        """Where the engines want their inputs."""
        return self.generate.device

    @property
    def shareable(self) -> bool:
        """Whether several sessions may call both engines at once."""
        return self.motion.shareable and self.generate.shareable

    def close(self) -> None:
        self.motion.close()
        self.generate.close()


@dataclass(frozen=True, slots=True, eq=False)
class Weights:
    """A model's weights and where they came from (see `load_reenactor`).

    Attributes:
        reenactor: the networks, on the CPU.
        label: where the weights came from, for logs and the run summary.
        trained: ``False`` for randomly initialised weights.
        domain: what the weights were trained on (the checkpoint says it);
            ``None`` for random weights, which model nothing.
    """

    reenactor: Reenactor
    label: str
    trained: bool
    domain: TrainingDomain | None


def bundled_checkpoint() -> Path | None:
    """The demo checkpoint shipped under ``networks/pretrained/``, if present.

    `BUNDLED_NAME` when it is there, else the first ViCoFace checkpoint, else
    the first checkpoint of any family.
    """
    import networks

    folder = Path(networks.__file__).resolve().parent / "pretrained"
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
    preferred = [p for p in found if p.name == BUNDLED_NAME]
    preferred += [p for p in found if p.name.startswith("vicoface")]
    ranked = preferred or found
    return ranked[0] if ranked else None


def load_reenactor(
    checkpoint: Path | None, config: str = DEFAULT_RANDOM_CONFIG, seed: int = 0
) -> Weights:
    """The `Weights` of a checkpoint, or random weights of ``config`` when ``None``.

    Random weights come from `networks.random_init.random_generator`: seeded,
    with flows of a trained model's size, so engines can be checked against
    each other on them.

    Weights stay on the CPU: the engines move what they run.
    """
    if checkpoint is not None:
        from networks.checkpoint import checkpoint_domain, load_generator

        generator = load_generator(checkpoint)
        return Weights(Reenactor(generator), f"{generator.config.name} from {checkpoint.name}",
                       True, checkpoint_domain(checkpoint))
    from networks.random_init import random_generator

    try:
        model_config = get_config(config)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    generator = random_generator(model_config, seed)
    return Weights(Reenactor(generator), f"{config} with random weights (seed {seed})", False,
                   None)


def engine_specs(graph: MotionGraph | GenerateGraph) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's inputs and outputs (already engine `TensorSpec`s), as lists."""
    return list(graph.input_specs), list(graph.output_specs)


def torch_engines(reenactor: Reenactor, device: torch.device) -> tuple[Engine, Engine]:
    """``(motion, generate)`` as `TorchEngine`s over the reenactor's export graphs."""
    motion_in, motion_out = engine_specs(reenactor.motion_graph)
    gen_in, gen_out = engine_specs(reenactor.generate_graph)
    motion = TorchEngine(reenactor.motion_graph, motion_in, motion_out, device=device,
                         name=f"torch:motion:{reenactor.config.name}")
    generate = TorchEngine(reenactor.generate_graph, gen_in, gen_out, device=device,
                           name=f"torch:generate:{reenactor.config.name}")
    return motion, generate


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Which model to run and how: what every command that takes a model composes.

    Attributes:
        checkpoint: model weights (``.safetensors``/``.pt``); ``None`` = the
            bundled demo model, or random weights of ``config``.
        config: a configuration built with random weights instead of a
            checkpoint (``None``: the bundled model, else `DEFAULT_RANDOM_CONFIG`).
        backend: ``None`` = `DEFAULT_CPU_BACKEND` on the CPU, TensorRT on a
            CUDA device.
        device: where the graphs compute (``"cpu"`` or ``"cuda:N"``).
        threads: intra-op threads per engine. One is right on a small CPU:
            the stages already run in parallel threads, one per stage.
        precision: FP32, or FP16 (TensorRT only: FP16-typed graph and plan);
            ``None`` = FP16 when the backend resolves to TensorRT (a CUDA
            device), else FP32 (see `resolved_precision`).
        max_batch: the largest batch one engine call takes (a TensorRT
            engine's optimisation profile is ``1..max_batch``, see
            `engine_batch`; a batcher of several sessions reads it too).
        allow_fallback: use the next available backend (logged) when the
            requested one cannot run here, instead of failing.
        cache_dir: where exported graphs and plans are kept between runs
            (``None``: `default_cache_dir`).
        ort_graph_optimization: ONNX Runtime's graph optimisation level.
    """

    checkpoint: Path | None = None
    config: str | None = None
    backend: BackendName | None = None
    device: str = "cpu"
    threads: int = 1
    precision: Precision | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    allow_fallback: bool = True
    cache_dir: Path | None = None
    ort_graph_optimization: str = field(default="all")

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.config is not None:
            raise ValueError("give a checkpoint (the file names its configuration) or a "
                             "configuration, not both")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.max_batch < 1:
            raise ValueError(f"the largest batch must be >= 1, got {self.max_batch}")
        if self.precision is Precision.FP16 and self.resolved_backend is not BackendName.TENSORRT:
            raise ValueError(f"FP16 runs on TensorRT only (backend {self.resolved_backend}); "
                             "use --precision fp32, or --backend tensorrt on a CUDA device")

    @property
    def resolved_backend(self) -> BackendName:
        if self.backend is not None:
            return BackendName(self.backend)
        return BackendName.TENSORRT if torch.device(self.device).type == "cuda" \
            else DEFAULT_CPU_BACKEND

    @property
    def resolved_precision(self) -> Precision:
        """The precision asked for: the explicit one, else FP16 on TensorRT, else FP32.

        What runs also depends on the backend that opens: a TensorRT request
        that falls back to another backend computes in FP32 (`effective_precision`).
        """
        if self.precision is not None:
            return Precision(self.precision)
        fp16 = self.resolved_backend is BackendName.TENSORRT
        return Precision.FP16 if fp16 else Precision.FP32

    def weights_file(self) -> Path | None:
        """The checkpoint to load: the explicit one, else the bundled model (``None``: random)."""
        if self.checkpoint is not None:
            if not self.checkpoint.is_file():
                raise FileNotFoundError(f"checkpoint {self.checkpoint} not found; check the path")
            return self.checkpoint
        return None if self.config is not None else bundled_checkpoint()


def default_cache_dir() -> Path:
    """``$VICOCAM_CACHE`` or ``$XDG_CACHE_HOME/vicocam`` (``~/.cache/vicocam``)."""
    explicit = os.environ.get("VICOCAM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vicocam"


def weights_digest(module: nn.Module, config: ModelConfig) -> str:
    """A short hash of a model's weights and configuration (names exported graphs)."""
    digest = hashlib.sha256(config.to_json().encode())
    digest.update(torch.__version__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def engine_batch(spec: ModelSpec) -> BatchRange:
    """The batch range of the live engines: ``1..spec.max_batch``, tuned for 1.

    Part of a TensorRT plan's key: ``vicocam run``, ``serve`` and ``engines
    build`` all take it from here. Tuned for batch 1, the single-session
    path, so a batcher's larger calls never slow the common case down.
    """
    return BatchRange(1, 1, spec.max_batch)


def effective_precision(spec: ModelSpec, backend: str) -> Precision:
    """What ``spec``'s engines compute in on ``backend``: FP16 only on TensorRT."""
    if backend == BackendName.TENSORRT:
        return spec.resolved_precision
    return Precision.FP32


def open_model_engines(reenactor: Reenactor, options: ModelSpec) -> tuple[Engine, Engine]:
    """``(motion, generate)`` engines for ``reenactor`` on the requested backend.

    ONNX-based backends get the graphs exported (opset 18), folded and
    checked once per weights; the files are reused from the cache folder.
    """
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {options.device} was asked for, but torch {torch.__version__} sees no CUDA "
            "GPU; run with --device cpu, or install a CUDA build of PyTorch for your driver"
        )
    backend = select_backend(options.resolved_backend, allow_fallback=options.allow_fallback)
    motion, generate = engine_sources(reenactor, options, backend.name)
    return open_engine(motion, backend.name), open_engine(generate, backend.name)


def engine_sources(reenactor: Reenactor, spec: ModelSpec,
                   backend: str) -> tuple[EngineSource, EngineSource]:
    """What ``(motion, generate)`` engines of ``spec`` on ``backend`` are made from.

    Exports the ONNX graphs (and the FP16-typed ones for FP16 on TensorRT)
    into the model's cache folder unless they are there; the torch backend
    needs none. The only recipe for the live engines (see the module doc).
    """
    precision = effective_precision(spec, backend)
    folder: Path | None = None
    onnx_paths: dict[str, Path] = {}
    if backend != BackendName.TORCH:
        folder = _onnx_folder(model_folder(reenactor, spec.cache_dir))
        onnx_paths = _onnx_files(reenactor, folder, precision)
    return (
        _engine_source("motion", reenactor.motion_graph, folder, onnx_paths, spec, precision),
        _engine_source("generate", reenactor.generate_graph, folder, onnx_paths, spec, precision),
    )


def _onnx_files(reenactor: Reenactor, folder: Path, precision: Precision) -> dict[str, Path]:
    """``{"motion": ..., "generate": ...}`` plus ``"motion.fp16"``... for FP16."""
    paths = {case.name: _exported(case, folder) for case in model_cases(reenactor)}
    if precision is Precision.FP16:
        paths |= {f"{name}.fp16": _fp16(path) for name, path in list(paths.items())}
    return paths


def model_folder(reenactor: Reenactor, cache_dir: Path | None = None) -> Path:
    """Where a model's exported graphs and TensorRT plans live (named by its weights)."""
    digest = weights_digest(reenactor.generator, reenactor.config)
    return (cache_dir or default_cache_dir()) / "onnx" / f"{reenactor.config.name}-{digest}"


def _onnx_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        # A read-only home must not stop a run: export into a private temp folder.
        folder = Path(tempfile.mkdtemp(prefix="vicocam-onnx-"))
    return folder


def _engine_source(role: str, graph: MotionGraph | GenerateGraph, folder: Path | None,
                   onnx_paths: dict[str, Path], spec: ModelSpec,
                   precision: Precision) -> EngineSource:
    """What the registry needs for one graph, named ``ROLE:CONFIG`` (plan file names)."""
    from trt_engines.trt_build import BuildOptions

    inputs, outputs = engine_specs(graph)
    return EngineSource(
        name=f"{role}:{graph.config.name}",
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        device=torch.device(spec.device),
        module=lambda: graph,
        onnx_path=onnx_paths.get(role),
        onnx_fp16_path=onnx_paths.get(f"{role}.fp16"),
        batch=engine_batch(spec),
        trt_options=BuildOptions(trt_precision(precision)),
        cache_dir=None if folder is None else folder / "tensorrt",
        ort_options=ort_options(spec),
    )


def ort_options(spec: ModelSpec) -> OrtOptions:
    """ONNX Runtime's session options for ``spec``: on a CUDA device its CUDA provider
    first (on that GPU), the CPU after it; on the CPU, the CPU provider only."""
    device = torch.device(spec.device)
    cuda = device.type == "cuda"
    return OrtOptions(
        providers=("CUDAExecutionProvider", "CPUExecutionProvider") if cuda
        else ("CPUExecutionProvider",),
        intra_op_threads=spec.threads,
        graph_optimization=spec.ort_graph_optimization,
        cuda_device=(device.index or 0) if cuda else None,
    )


def _exported(case: GraphCase, folder: Path) -> Path:
    """``folder/NAME.onnx``: exported, folded, linted and checked (reused when present).

    The checks feed picture-like inputs (`model_cases`): uniform noise drives a
    generator far outside its range, where rounding alone moves the output.
    """
    from trt_engines.graph_export import prepare_onnx

    final = folder / f"{case.name}.onnx"
    if final.is_file():
        return final
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
        made = prepare_onnx(case, scratch)
        made.replace(final)  # atomic: a crash never leaves a half-written graph under the name
    log.info("exported %s", final)
    return final


def trt_precision(precision: Precision) -> str:
    """The TensorRT build precision of a model precision (strict FP32 for parity)."""
    return "fp16-strong" if precision is Precision.FP16 else "fp32-notf32"


def _fp16(path: Path) -> Path:
    """``NAME.fp16.onnx`` beside ``path``: the FP16-typed graph (reused when present)."""
    from trt_engines.graph_export import fp16_graph

    final = path.with_name(f"{path.stem}.fp16.onnx")
    return final if final.is_file() else fp16_graph(path)


def load_weights(spec: ModelSpec, seed: int = 0) -> Weights:
    """The `Weights` ``spec`` names (see `load_reenactor`)."""
    return load_reenactor(spec.weights_file(), spec.config or DEFAULT_RANDOM_CONFIG, seed)


def open_bundle(spec: ModelSpec, seed: int = 0) -> ModelBundle:
    """Load the weights ``spec`` names and open both engines on its backend."""
    torch.set_num_threads(spec.threads)
    weights = load_weights(spec, seed)
    motion, generate = open_model_engines(weights.reenactor, spec)
    precision = effective_precision(spec, motion.backend)
    shown = f", {precision}" if precision is not Precision.FP32 else ""
    return ModelBundle(weights.reenactor, motion, generate,
                       f"{weights.label}, {motion.backend} backend{shown}", weights.trained,
                       weights.domain)
