"""A fake ``tensorrt`` module for CPU tests.

It implements the names our TensorRT code calls (the 10.12+/11 API) with the
same signatures and records every call. The fake execution context really
computes: on `execute_async_v3` it reads the inputs from the raw addresses it
was given, runs a torch module, and writes the outputs to the output
addresses, so wrong shapes, stale addresses or a missing binding show up as
wrong numbers, not just as a wrong call log. CPU tensors only.
"""

from __future__ import annotations

import ctypes
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from trt_engines.engine import TensorSpec
from trt_engines.profiles import ShapeRange

VERSION = "10.16.1.11"


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT32 = 3
    INT64 = 4
    BOOL = 5


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class Severity(enum.Enum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 1


class BuilderFlag(enum.Enum):
    TF32 = 7
    VERSION_COMPATIBLE = 13


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class HardwareCompatibilityLevel(enum.Enum):
    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


TORCH_TO_FAKE = {
    torch.float32: DataType.FLOAT,
    torch.float16: DataType.HALF,
    torch.int32: DataType.INT32,
    torch.int64: DataType.INT64,
}


class ILogger:
    Severity = Severity

    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:  # overridden by subclasses
        raise NotImplementedError


def view_at(address: int, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor over raw memory at ``address`` (what TensorRT sees)."""
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    count = int(np.prod(shape)) if len(shape) else 1
    raw = (ctypes.c_char * (count * np_dtype.itemsize)).from_address(address)
    array = np.frombuffer(memoryview(raw).cast("B"), dtype=np_dtype)
    return torch.from_numpy(array.reshape(tuple(shape)))


# ------------------------------------------------------------------- runtime side


@dataclass
class FakeNetworkSpec:
    """What a fake plan 'contains': a module computing outputs from inputs."""

    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    profile: dict[str, ShapeRange]


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.calls: list[tuple[Any, ...]] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.execute_result = True

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        self.calls.append(("set_input_shape", name, tuple(shape)))
        rng = self.engine.spec.profile.get(name)
        if rng is not None and not rng.contains(shape):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def infer_shapes(self) -> list[str]:
        self.calls.append(("infer_shapes",))
        return [s.name for s in self.engine.spec.inputs if s.name not in self.shapes]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        for spec in self.engine.spec.inputs:
            if spec.name == name:
                return self.shapes.get(name, tuple(-1 if d is None else d for d in spec.shape))
        batch = self.shapes.get(self.engine.spec.inputs[0].name, (-1,))[0]
        spec = next(s for s in self.engine.spec.outputs if s.name == name)
        return tuple(batch if d is None else d for d in spec.shape)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.calls.append(("set_tensor_address", name))
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.calls.append(("execute_async_v3", stream_handle))
        if not self.execute_result:
            return False
        spec = self.engine.spec
        args = [view_at(self.addresses[s.name], self.shapes[s.name], s.dtype) for s in spec.inputs]
        with torch.inference_mode():
            results = spec.module(*args)
        for out_spec, result in zip(spec.outputs, results, strict=True):
            target = view_at(self.addresses[out_spec.name], result.shape, out_spec.dtype)
            target.copy_(result)
        return True


class FakeEngine:
    def __init__(self, spec: FakeNetworkSpec) -> None:
        self.spec = spec
        self.contexts: list[FakeContext] = []
        self.tensors = [
            *((s, TensorIOMode.INPUT) for s in spec.inputs),
            *((s, TensorIOMode.OUTPUT) for s in spec.outputs),
        ]

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def _spec(self, name: str) -> tuple[TensorSpec, TensorIOMode]:
        return next(t for t in self.tensors if t[0].name == name)

    def get_tensor_name(self, index: int) -> str:
        return self.tensors[index][0].name

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._spec(name)[1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(-1 if d is None else d for d in self._spec(name)[0].shape)

    def get_tensor_dtype(self, name: str) -> DataType:
        return TORCH_TO_FAKE[self._spec(name)[0].dtype]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[list[int]]:
        rng = self.spec.profile[name]
        return [list(rng.min), list(rng.opt), list(rng.max)]

    def create_execution_context(self) -> FakeContext:
        context = FakeContext(self)
        self.contexts.append(context)
        return context


@dataclass
class PlanStore:
    """Maps fake plan bytes to network specs (a plan is b"FAKEPLAN:<n>")."""

    networks: list[FakeNetworkSpec] = field(default_factory=list)

    def plan_for(self, spec: FakeNetworkSpec) -> bytes:
        self.networks.append(spec)
        return f"FAKEPLAN:{len(self.networks) - 1}".encode()

    def engine_for(self, blob: bytes) -> FakeEngine | None:
        if not blob.startswith(b"FAKEPLAN:"):
            return None
        return FakeEngine(self.networks[int(blob.split(b":")[1])])


# ------------------------------------------------------------------- builder side


@dataclass
class FakeTensor:
    name: str
    shape: tuple[int, ...]


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[FakeTensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> FakeTensor:
        return self.inputs[index]


@dataclass
class FakeParserError:
    node_index: int
    op: str
    name: str
    message: str

    def code(self) -> int:
        return 8

    def desc(self) -> str:
        return self.message

    def node(self) -> int:
        return self.node_index

    def node_name(self) -> str:
        return self.name

    def node_operator(self) -> str:
        return self.op


class FakeTimingCache:
    def __init__(self, blob: bytes) -> None:
        self.blob = bytes(blob)

    def serialize(self) -> bytes:
        return self.blob + b"+timings"


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(
        self, name: str, lo: Sequence[int], opt: Sequence[int], hi: Sequence[int]
    ) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeConfig:
    def __init__(self) -> None:
        self.flags = {BuilderFlag.TF32}  # TensorRT's default
        self.pool_limits: dict[MemoryPoolType, int] = {}
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = HardwareCompatibilityLevel.NONE
        self.profiles: list[FakeProfile] = []
        self.timing_cache: FakeTimingCache | None = None
        self.accept_timing_cache = True

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pool_limits[pool] = size

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags.discard(flag)

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self.flags

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, blob: bytes) -> FakeTimingCache:
        return FakeTimingCache(blob)

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        if not self.accept_timing_cache and cache.blob:
            return False
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> FakeTimingCache | None:
        return self.timing_cache


class FakeTrtState:
    """Knobs and records shared by one fake module's objects."""

    def __init__(self, module_factory: Callable[[], nn.Module], outputs: tuple[TensorSpec, ...]):
        self.module_factory = module_factory
        self.outputs = outputs
        self.unsupported_ops: set[str] = set()
        self.fail_build = False
        self.reject_timing_cache = False
        self.plans = PlanStore()
        self.builds: list[tuple[FakeNetwork, FakeConfig]] = []
        self.loggers: list[Any] = []


def make_fake_trt(
    module_factory: Callable[[], nn.Module], outputs: tuple[TensorSpec, ...]
) -> tuple[ModuleType, FakeTrtState]:
    """A fake ``tensorrt`` module whose parser reads real ONNX I/O and whose
    'plans' run ``module_factory()`` on the CPU."""
    state = FakeTrtState(module_factory, outputs)
    trt = ModuleType("tensorrt")
    trt.__version__ = VERSION  # type: ignore[attr-defined]
    for cls in (
        DataType,
        TensorIOMode,
        NetworkDefinitionCreationFlag,
        BuilderFlag,
        MemoryPoolType,
        HardwareCompatibilityLevel,
        ILogger,
    ):
        setattr(trt, cls.__name__, cls)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            state.loggers.append(logger)

        def deserialize_cuda_engine(self, blob: bytes) -> FakeEngine | None:
            return state.plans.engine_for(bytes(blob))

    class OnnxParser:
        def __init__(self, network: FakeNetwork, logger: Any) -> None:
            self.network, self.logger = network, logger
            self.errors: list[FakeParserError] = []
            self.path: str | None = None

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> FakeParserError:
            return self.errors[index]

        def clear_errors(self) -> None:
            self.errors = []

        def parse_from_file(self, path: str) -> bool:
            self.path = path
            model = onnx.load(path)
            for i, node in enumerate(model.graph.node):
                if node.op_type in state.unsupported_ops:
                    self.errors.append(FakeParserError(i, node.op_type, node.name, "unsupported"))
            for value in model.graph.input:
                dims = value.type.tensor_type.shape.dim
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
                self.network.inputs.append(FakeTensor(value.name, shape))
            self.logger.log(Severity.INFO, f"parsed {Path(path).name}")
            return not self.errors

    class Builder:
        def __init__(self, logger: Any) -> None:
            self.logger = logger
            state.loggers.append(logger)

        def create_network(self, flags: int) -> FakeNetwork:
            return FakeNetwork(flags)

        def create_builder_config(self) -> FakeConfig:
            config = FakeConfig()
            config.accept_timing_cache = not state.reject_timing_cache
            return config

        def create_optimization_profile(self) -> FakeProfile:
            return FakeProfile()

        def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> Any:
            state.builds.append((network, config))
            if state.fail_build:
                self.logger.log(Severity.ERROR, "out of memory while building")
                return None
            profile = {
                name: ShapeRange(*shapes) for name, shapes in config.profiles[0].shapes.items()
            }
            inputs = tuple(
                TensorSpec(t.name, tuple(None if d < 0 else d for d in t.shape), torch.float32)
                for t in network.inputs
            )
            spec = FakeNetworkSpec(state.module_factory(), inputs, state.outputs, profile)
            return memoryview(state.plans.plan_for(spec))

    trt.Runtime = Runtime  # type: ignore[attr-defined]
    trt.OnnxParser = OnnxParser  # type: ignore[attr-defined]
    trt.Builder = Builder  # type: ignore[attr-defined]
    return trt, state
