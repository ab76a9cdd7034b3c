"""Build a serialized TensorRT engine ("plan") from an ONNX file.

Written against the TensorRT 10.12+ API that 11.x keeps (see the TensorRT
notes): strongly typed networks (precision comes from the ONNX types: FP16
via an FP16-typed ONNX from `trt_engines.onnx_fp16`), no builder precision
flags, name-based profiles. ``tensorrt`` is imported lazily; every function
takes the module as an argument so the logic runs against a fake in tests.

Failures never print-and-return-None: parser errors are all collected and
raised, and a ``None`` plan raises with the captured TensorRT log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from trt_engines.cache import BuilderKnobs, atomic_write
from trt_engines.errors import import_tensorrt
from trt_engines.profiles import Profile

log = logging.getLogger(__name__)

HARDWARE_COMPAT_NAMES = {
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}
SEVERITY_LEVELS = {
    "INTERNAL_ERROR": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "VERBOSE": logging.DEBUG,
}


class EngineBuildError(RuntimeError):
    """The ONNX did not parse or the builder returned no plan; the message has the log."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build one plan.

    Attributes:
        precision: ``"fp32-notf32"`` (strict FP32, the parity build),
            ``"fp32"`` (TF32 allowed) or ``"fp16-strong"`` (pass an FP16-typed
            ONNX; TF32 is off for its FP32 islands).
        knobs: optimisation level, workspace limit, hardware compatibility.
        timing_cache: file to load/save tactic timings (per GPU and TensorRT
            version, see `EngineCache.timing_cache_path`); ``None`` = none.
        progress_interval_s: seconds between "still building" log lines.
    """

    precision: str = "fp32-notf32"
    knobs: BuilderKnobs = field(default_factory=BuilderKnobs)
    timing_cache: Path | None = None
    progress_interval_s: float = 15.0


class LogCapture:
    """Thread-safe record of TensorRT log messages (the builder logs from its own threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str]] = []

    def add(self, severity: str, message: str) -> None:
        with self._lock:
            self._lines.append((severity, message))

    def lines(self, *severities: str) -> list[str]:
        with self._lock:
            return [f"[{s}] {m}" for s, m in self._lines if not severities or s in severities]

    def tail(self, count: int = 40) -> str:
        """The last ``count`` warning/error lines, for exception messages."""
        important = self.lines("INTERNAL_ERROR", "ERROR", "WARNING")
        return "\n".join(important[-count:]) or "(TensorRT logged no warnings or errors)"


def make_logger(trt: ModuleType, capture: LogCapture) -> Any:
    """A ``trt.ILogger`` that records into ``capture`` and forwards to `logging`."""

    class CaptureLogger(trt.ILogger):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            # Called from TensorRT's C++ side: an exception here would abort the build.
            try:
                name = str(getattr(severity, "name", severity)).rsplit(".", 1)[-1]
                capture.add(name, msg)
                log.log(SEVERITY_LEVELS.get(name, logging.INFO), "TensorRT: %s", msg)
            except Exception:
                pass

    return CaptureLogger()


class BuildProgress:
    """Logs "still building" lines with the elapsed time; builds take minutes.

    Use as a context manager around the build call; the background thread
    calls `tick` every ``interval_s``. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        what: str,
        interval_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] = log.info,
    ) -> None:
        self.what, self.interval_s, self.clock, self.emit = what, interval_s, clock, emit
        self._start = clock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"build:{what}", daemon=True)

    def elapsed(self) -> float:
        return self.clock() - self._start

    def tick(self) -> str:
        line = f"building {self.what}: {self.elapsed():.0f} s elapsed (this can take minutes)"
        self.emit(line)
        return line

    def __enter__(self) -> BuildProgress:
        self._start = self.clock()
        self.emit(f"building {self.what} ...")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.emit(f"building {self.what}: finished after {self.elapsed():.1f} s")

    def _loop(self) -> None:
        while not self._done.wait(self.interval_s):
            self.tick()


def build_plan(
    onnx_path: str | Path,
    profile: Profile,
    options: BuildOptions,
    *,
    trt: ModuleType | None = None,
) -> bytes:
    """Parse ``onnx_path``, configure and build; return the serialized plan."""
    trt = trt or import_tensorrt()
    capture = LogCapture()
    logger = make_logger(trt, capture)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)  # owns the weights: keep until the build returns
    parse_onnx(parser, Path(onnx_path), capture)
    check_profile_covers_inputs(network, profile)
    config = make_config(trt, builder, options, profile)
    timing_cache = attach_timing_cache(config, options.timing_cache)
    with BuildProgress(Path(onnx_path).name, options.progress_interval_s):
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT failed to build {onnx_path}:\n{capture.tail()}")
    save_timing_cache(config, options.timing_cache)
    del timing_cache, parser
    return bytes(plan)


def network_flags(trt: ModuleType) -> int:
    """The STRONGLY_TYPED bit (10.12+; always on and ignored in 11)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        raise EngineBuildError(
            f"TensorRT {getattr(trt, '__version__', '?')} has no strongly typed networks; "
            "install TensorRT 10.12 or newer: pip install 'vicocam[trt]'"
        )
    return 1 << int(flag)


def parse_onnx(parser: Any, path: Path, capture: LogCapture) -> None:
    """``parse_from_file`` (resolves external weights); raise with every parser error."""
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    if parser.parse_from_file(str(path)):
        return
    errors = [_format_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
    parser.clear_errors()
    raise EngineBuildError(
        f"TensorRT could not parse {path} ({len(errors)} error(s)):\n  "
        + "\n  ".join(errors)
        + f"\nTensorRT log:\n{capture.tail()}"
    )


def _format_parser_error(error: Any) -> str:
    try:
        return (
            f"node {error.node()} ({error.node_operator()} {error.node_name()!r}): "
            f"{error.desc()} [code {error.code()}]"
        )
    except Exception:
        return str(error)


def check_profile_covers_inputs(network: Any, profile: Profile) -> None:
    """Every network input with a dynamic dim needs a profile entry of the same rank."""
    problems = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        rng = profile.get(tensor.name)
        if rng is None and any(d < 0 for d in shape):
            problems.append(f"input {tensor.name!r} {shape} is dynamic but has no profile entry")
        elif rng is not None and len(rng.min) != len(shape):
            problems.append(f"profile for {tensor.name!r} has rank {len(rng.min)}, input {shape}")
    if problems:
        raise EngineBuildError(
            "optimisation profile does not fit the network: " + "; ".join(problems)
        )


def make_config(trt: ModuleType, builder: Any, options: BuildOptions, profile: Profile) -> Any:
    """Builder config: workspace, optimisation level, TF32 per precision, compat, one profile."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.knobs.workspace_bytes)
    config.builder_optimization_level = options.knobs.optimization_level
    if options.precision != "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 is on by default; parity needs it off
    _set_hardware_compat(trt, config, options.knobs.hardware_compat)
    trt_profile = builder.create_optimization_profile()
    for name in sorted(profile):
        rng = profile[name]
        trt_profile.set_shape(name, rng.min, rng.opt, rng.max)
    config.add_optimization_profile(trt_profile)
    return config


def _set_hardware_compat(trt: ModuleType, config: Any, level: str) -> None:
    if level == "none":
        return
    member = getattr(trt.HardwareCompatibilityLevel, HARDWARE_COMPAT_NAMES[level], None)
    if member is None:
        raise EngineBuildError(f"this TensorRT has no hardware compatibility level {level!r}")
    config.hardware_compatibility_level = member


def attach_timing_cache(config: Any, path: Path | None) -> Any:
    """Load the timing cache (or start an empty one); a mismatched file is ignored."""
    if path is None:
        return None
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, False):
        log.warning("timing cache %s does not match this GPU/TensorRT; starting afresh", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache  # must stay alive until the build ends


def save_timing_cache(config: Any, path: Path | None) -> None:
    if path is not None:
        atomic_write(path, bytes(config.get_timing_cache().serialize()))
