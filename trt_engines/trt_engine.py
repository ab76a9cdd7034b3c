"""`TrtEngine`: runs a deserialized TensorRT engine on the caller's CUDA stream.

Written against the name-based I/O API of TensorRT 10/11 (see the TensorRT
notes). At construction it enumerates the I/O tensors, sets every input to
its profile maximum, and allocates one persistent torch buffer per tensor at
that largest shape. Each `run`:

1. validates names, dtypes, devices and profile bounds (no host copies: feeds
   must already be on the engine's device);
2. copies each feed into the first elements of its buffer on the current
   torch stream;
3. calls ``set_input_shape`` only for inputs whose shape changed, then
   requires ``infer_shapes() == []``;
4. binds every input and output address (views share their buffer's base
   pointer, so alignment holds);
5. enqueues ``execute_async_v3`` on the caller's current stream (a stage makes
   its own stream current, see `trt_engines.streams`; nothing is captured at
   construction) and returns output *views*, valid until the next `run` and
   ordered on that stream. Clone them to keep them.

`open_trt_engine` loads a plan from the `EngineCache` (building it on a miss)
and wraps it; `prepare_plan` only makes sure the plan is cached (``vicocam
engines build``). Both key the plan with `plan_key`.

One `TrtEngine` (one execution context) serves one thread/stream at a time.
The ``trt`` module and the stream-handle source are injectable so that all of
this runs against a fake on the CPU in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from trt_engines.backends import BackendName
from trt_engines.cache import EngineCache, EngineKey, GpuInfo, make_key
from trt_engines.engine import EngineBase, TensorSpec, validate_feeds
from trt_engines.errors import import_tensorrt
from trt_engines.profiles import BatchRange, ShapeRange, buffer_view, check_in_profile, profile_for
from trt_engines.trt_build import BuildOptions, LogCapture, build_plan, make_logger

log = logging.getLogger(__name__)

TRT_TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "BOOL": torch.bool,
}
"""``trt.DataType`` member name -> torch dtype (TensorRT never casts I/O)."""


@dataclass(frozen=True)
class IOTensor:
    """One engine I/O tensor: its spec, direction and (inputs) profile range."""

    spec: TensorSpec
    is_input: bool
    profile: ShapeRange | None


def torch_dtype(trt: ModuleType, trt_dtype: Any) -> torch.dtype:
    for name, dtype in TRT_TORCH_DTYPES.items():
        if getattr(trt.DataType, name, None) == trt_dtype:
            return dtype
    raise ValueError(f"unsupported TensorRT I/O dtype {trt_dtype}")


def enumerate_io(trt: ModuleType, engine: Any, profile_index: int = 0) -> list[IOTensor]:
    """Every I/O tensor of ``engine`` in engine order, with profile ranges for inputs."""
    tensors = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        dims = tuple(int(d) for d in engine.get_tensor_shape(name))
        shape = tuple(None if d < 0 else d for d in dims)
        spec = TensorSpec(name, shape, torch_dtype(trt, engine.get_tensor_dtype(name)))
        rng = None
        if is_input and None in shape:
            lo, opt, hi = engine.get_tensor_profile_shape(name, profile_index)
            rng = ShapeRange(tuple(lo), tuple(opt), tuple(hi))
        tensors.append(IOTensor(spec, is_input, rng))
    return tensors


def current_stream_handle(device: torch.device) -> Callable[[], int]:
    """The raw handle of torch's current stream on ``device``, read at each call."""
    return lambda: int(torch.cuda.current_stream(device).cuda_stream)


class TrtEngine(EngineBase):
    """A TensorRT engine behind the `Engine` interface; see the module docstring.

    Args:
        engine: a deserialized ``ICudaEngine``.
        device: the CUDA device the engine was deserialized on.
        trt: the ``tensorrt`` module (imported lazily if ``None``).
        stream_handle: returns the stream handle to enqueue on; default:
            torch's current stream on ``device`` at each `run`.
        keepalive: objects that must outlive the engine (the ``trt.Runtime``).
    """

    backend: str = BackendName.TENSORRT
    shareable: bool = False

    def __init__(
        self,
        engine: Any,
        *,
        device: torch.device | str,
        name: str = "tensorrt",
        trt: ModuleType | None = None,
        stream_handle: Callable[[], int] | None = None,
        keepalive: Sequence[object] = (),
    ) -> None:
        self._trt = trt or import_tensorrt()
        io = enumerate_io(self._trt, engine)
        super().__init__(
            name,
            [t.spec for t in io if t.is_input],
            [t.spec for t in io if not t.is_input],
            device,
        )
        self._io = io
        self._profiles = {t.spec.name: t.profile for t in io if t.profile is not None}
        self._keepalive = (*keepalive, engine)
        self._context = engine.create_execution_context()
        self._stream_handle = stream_handle or current_stream_handle(self.device)
        self._warned_default_stream = False
        self._bound_shapes: dict[str, tuple[int, ...]] = {}
        self._buffers = self._allocate_buffers()

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the persistent I/O buffers (each tensor's largest shape)."""
        return {name: tuple(buf.shape) for name, buf in self._buffers.items()}

    # ------------------------------------------------------------------ setup

    def _allocate_buffers(self) -> dict[str, torch.Tensor]:
        """One buffer per I/O tensor at its largest shape (inputs at profile max)."""
        largest = {
            s.name: self._profiles[s.name].max if s.name in self._profiles else _static(s)
            for s in self.inputs
        }
        self._set_input_shapes(largest)
        buffers = {
            s.name: torch.empty(largest[s.name], dtype=s.dtype, device=self.device)
            for s in self.inputs
        }
        for spec in self.outputs:
            shape = self._output_shape(spec.name)
            buffers[spec.name] = torch.empty(shape, dtype=spec.dtype, device=self.device)
        return buffers

    # ------------------------------------------------------------------ run

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_open()
        validate_feeds(self.inputs, feeds)
        self._check_devices_and_profile(feeds)
        shapes = {s.name: tuple(feeds[s.name].shape) for s in self.inputs}
        self._set_input_shapes(shapes)
        views = {s.name: buffer_view(self._buffers[s.name], shapes[s.name]) for s in self.inputs}
        for spec in self.inputs:
            views[spec.name].copy_(feeds[spec.name])  # device-to-device, on the current stream
        outputs = {
            s.name: buffer_view(self._buffers[s.name], self._output_shape(s.name))
            for s in self.outputs
        }
        self._bind_addresses({**views, **outputs})
        self._execute()
        return outputs

    def _check_devices_and_profile(self, feeds: Mapping[str, torch.Tensor]) -> None:
        for spec in self.inputs:
            tensor = feeds[spec.name]
            if tensor.device != self.device:
                raise ValueError(
                    f"input {spec.name!r} is on {tensor.device}, this engine runs on "
                    f"{self.device}; move it there first (the TensorRT path never copies "
                    "from the host)"
                )
            if spec.name in self._profiles:
                check_in_profile(spec.name, tuple(tensor.shape), self._profiles[spec.name])

    def _set_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        changed = False
        for name, shape in shapes.items():
            if self._bound_shapes.get(name) == shape:
                continue
            if not self._context.set_input_shape(name, shape):
                raise ValueError(f"TensorRT rejected shape {shape} for input {name!r}")
            self._bound_shapes[name] = shape
            changed = True
        if changed:
            unresolved = list(self._context.infer_shapes())
            if unresolved:
                raise RuntimeError(f"{self.name}: TensorRT could not infer shapes of {unresolved}")

    def _output_shape(self, name: str) -> tuple[int, ...]:
        shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise RuntimeError(f"{self.name}: output {name!r} has unresolved shape {shape}")
        return shape

    def _bind_addresses(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for name, tensor in tensors.items():
            self._context.set_tensor_address(name, tensor.data_ptr())

    def _execute(self) -> None:
        handle = self._stream_handle()
        if handle == 0 and not self._warned_default_stream:
            self._warned_default_stream = True
            log.warning(
                "%s runs on the legacy default CUDA stream, which makes TensorRT add "
                "device syncs; run it inside `with stream.activate():`",
                self.name,
            )
        if not self._context.execute_async_v3(handle):
            raise RuntimeError(f"{self.name}: execute_async_v3 failed; see the TensorRT log")

    def close(self) -> None:
        # Context before engine before runtime: TensorRT objects depend on each other.
        super().close()
        self._context = None
        self._buffers = {}
        self._keepalive = ()


def _static(spec: TensorSpec) -> tuple[int, ...]:
    if any(d is None for d in spec.shape):
        raise ValueError(f"{spec.describe()} is dynamic but the engine has no profile for it")
    return tuple(int(d) for d in spec.shape if d is not None)


# ---------------------------------------------------------------------- loading


def gpu_info(device: torch.device) -> GpuInfo:
    """Name and compute capability of a CUDA device, for the cache key."""
    major, minor = torch.cuda.get_device_capability(device)
    return GpuInfo(torch.cuda.get_device_name(device), (int(major), int(minor)))


@dataclass(frozen=True)
class TrtSource:
    """What `open_trt_engine` needs.

    Attributes:
        name: model name used in plan file names and logs.
        onnx_path: the (folded, linted) ONNX; FP16-typed for ``fp16-strong``.
        inputs: the graph's input specs (for the optimisation profile).
        batch: batch sizes the engine must accept.
        options: precision and builder settings.
    """

    name: str
    onnx_path: Path
    inputs: tuple[TensorSpec, ...]
    batch: BatchRange = field(default_factory=BatchRange)
    options: BuildOptions = field(default_factory=BuildOptions)


def open_trt_engine(
    source: TrtSource,
    cache: EngineCache,
    device: torch.device | str,
    *,
    trt: ModuleType | None = None,
    gpu: GpuInfo | None = None,
) -> TrtEngine:
    """Load the cached plan for ``source`` or build it (under the cache's file lock)."""
    trt = trt or import_tensorrt()
    device = torch.device(device)
    plan = _load_plan(source, cache, trt, gpu or gpu_info(device))
    return TrtEngine(plan.engine, device=device, name=f"tensorrt:{source.name}", trt=trt,
                     keepalive=(plan.logger, plan.runtime))


def prepare_plan(
    source: TrtSource,
    cache: EngineCache,
    device: torch.device | str,
    *,
    trt: ModuleType | None = None,
    gpu: GpuInfo | None = None,
) -> Path:
    """The cached plan file of ``source``, built first when missing; no context is made.

    What ``vicocam engines build`` does, so that `open_trt_engine` later finds
    the plan under the same key (the plan is deserialized once as a check).
    """
    trt = trt or import_tensorrt()
    return _load_plan(source, cache, trt, gpu or gpu_info(torch.device(device))).path


def plan_key(source: TrtSource, trt_version: str, gpu: GpuInfo) -> EngineKey:
    """The cache key of ``source``'s plan on ``gpu`` with TensorRT ``trt_version``."""
    return make_key(
        source.onnx_path,
        trt_version=trt_version,
        gpu=gpu,
        precision=source.options.precision,
        profile=profile_for(source.inputs, source.batch),
        knobs=source.options.knobs,
    )


def plan_name(source: TrtSource) -> str:
    """The model part of the plan's file name: graph name and precision."""
    return f"{source.name}-{source.options.precision}"


@dataclass(frozen=True)
class _LoadedPlan:
    """A deserialized engine, the objects it needs kept alive, and its plan file."""

    engine: Any
    logger: Any
    runtime: Any
    path: Path


def _load_plan(source: TrtSource, cache: EngineCache, trt: ModuleType, gpu: GpuInfo) -> _LoadedPlan:
    version = str(trt.__version__)
    key = plan_key(source, version, gpu)
    timing = source.options.timing_cache or cache.timing_cache_path(gpu, version)
    options = replace(source.options, timing_cache=timing)
    profile = profile_for(source.inputs, source.batch)
    logger = make_logger(trt, LogCapture())  # forwards to `logging`; kept alive with the runtime
    runtime = trt.Runtime(logger)
    name = plan_name(source)
    engine = cache.get_or_build(
        name,
        key,
        lambda: build_plan(source.onnx_path, profile, options, trt=trt),
        runtime.deserialize_cuda_engine,
    )
    return _LoadedPlan(engine, logger, runtime, cache.plan_path(name, key))
