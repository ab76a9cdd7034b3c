"""Assemble and run the avatar path: driver source -> avatar stages -> sink.

`AvatarRunConfig` is what ``vicocam run`` composes from its arguments;
`build_avatar_run` turns it into a ready `Pipeline` (plus the settings box
and the model bundle), and `run_avatar` runs it with the terminal controls
and prints the summary. The benchmark builds the same pipeline, so what it
measures is what users run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import torch

from pipeline.control import SettingsBox
from pipeline.runtime import Pipeline, RunMode, RunReport, RuntimeConfig
from pipeline.stage import Source, Stage
from stages.io import SinkFactory, SinkOptions, SourceFactory, SourceOptions, open_sink, open_source
from stages.reenact.build import AvatarPathConfig, build_avatar_stages
from stages.reenact.model import (
    DEFAULT_RANDOM_CONFIG,
    EngineOptions,
    ModelBundle,
    bundled_checkpoint,
    open_bundle,
)
from stages.reenact.settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode
from stages.reenact.synthetic import (
    DEFAULT_AVATAR_IDENTITY,
    SyntheticDriverConfig,
    SyntheticDriverSource,
    avatar_loaders,
)

log = logging.getLogger(__name__)

DEFAULT_AVATAR = f"synthetic:{DEFAULT_AVATAR_IDENTITY}"
DEFAULT_DRIVER = "synthetic"
DEFAULT_SINK = "out/vicocam.mp4"
DEFAULT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class AvatarRunConfig:
    """One avatar run, composed by the command line.

    Attributes:
        avatars: portrait sources (picture paths or ``synthetic:N``); the
            first is shown at start, ``n`` cycles through them.
        driver: ``synthetic`` (a held-out synthetic person), ``camera:N``, or
            a video file; any other form the source registry knows.
        checkpoint: model weights; ``None`` = the bundled demo model, or a
            randomly initialised ``random_config`` when there is none.
        random_config: the configuration built when no weights are found.
        engines: backend, device and threads of the model engines.
        sink: a video file path, ``null``, or a registered sink.
        output: the initial output mode.
        mode: live (paced, drops to stay real time) or offline (every frame).
        seconds / frames: run length (``None``: the source's end, or
            `DEFAULT_SECONDS` for endless sources).
        fps: rate of the synthetic driver and of picture drivers.
        loop: replay a video file driver at its end.
        output_size: fixed output ``(width, height)``; ``None`` derives it
            from the first driver frame.
        max_in_flight: frames admitted and not yet delivered; ``None`` =
            `default_in_flight`.
        path: fixed settings of the avatar path.
    """

    avatars: tuple[str, ...] = (DEFAULT_AVATAR,)
    driver: str = DEFAULT_DRIVER
    checkpoint: Path | None = None
    random_config: str = DEFAULT_RANDOM_CONFIG
    engines: EngineOptions = field(default_factory=EngineOptions)
    sink: str = DEFAULT_SINK
    output: OutputMode = OutputMode.SIDE_BY_SIDE
    mode: RunMode = RunMode.LIVE
    seconds: float | None = None
    frames: int | None = None
    fps: float | None = None
    loop: bool = False
    output_size: tuple[int, int] | None = None
    max_in_flight: int | None = None
    path: AvatarPathConfig = field(default_factory=AvatarPathConfig)

    def __post_init__(self) -> None:
        if not self.avatars:
            raise ValueError("give at least one avatar portrait")
        if self.frames is not None and self.frames < 1:
            raise ValueError("frames must be >= 1")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError("seconds must be > 0")


@dataclass(eq=False)
class AvatarRun:
    """A built, not yet run, avatar pipeline and what controls it."""

    pipeline: Pipeline
    settings: LiveSettingsBox
    bundle: ModelBundle
    avatars: tuple[AvatarKey, ...]
    stages: list[Stage]


def resolve_checkpoint(checkpoint: Path | None) -> Path | None:
    """The explicit checkpoint, else the bundled demo model, else ``None`` (random weights)."""
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint} not found; check the path")
        return checkpoint
    return bundled_checkpoint()


def open_driver(
    config: AvatarRunConfig, registry: Mapping[str, SourceFactory] | None = None
) -> Source:
    """The driver source: ``synthetic[:N]`` is a held-out synthetic person (not the
    moving test pattern of ``stages.io``); anything else goes to the source registry."""
    name, _, arg = config.driver.partition(":")
    if name == "synthetic":
        identity = int(arg) if arg else SyntheticDriverConfig().identity
        return SyntheticDriverSource(SyntheticDriverConfig(
            identity=identity, fps=config.fps or 30, frames=config.frames))
    options = SourceOptions(fps=config.fps, frames=config.frames, loop=config.loop)
    return open_source(config.driver, options, registry)


def default_seconds(config: AvatarRunConfig) -> float | None:
    """How long a run lasts when neither seconds nor frames are given.

    A camera runs until stopped (``q`` or Ctrl-C); the synthetic demo, a
    picture or a looped file would never end, so they get `DEFAULT_SECONDS`;
    a file ends by itself.
    """
    if config.seconds is not None or config.frames is not None:
        return config.seconds
    name = config.driver.split(":", 1)[0]
    if name == "camera":
        return None
    suffix = Path(config.driver).suffix.lower()
    endless = config.loop or name == "synthetic" or suffix in {".png", ".jpg", ".jpeg"}
    return DEFAULT_SECONDS if endless else None


def default_in_flight(blocking_stages: int, cpus: int | None = None) -> int:
    """One frame per CPU core working plus one waiting, at most one per blocking stage + 1.

    On a CPU no more stages can run at once than there are cores; further
    frames in flight only wait in the edges, and after a hiccup (another
    process taking the cores) each of them is delivered late. (On the shared
    2-core test machine, interleaved live-benchmark runs could not separate
    3 in flight from the runtime's default of 6: median p95 92-96 ms for
    both at 26-28 fps; the cap rests on the argument above.)
    """
    cores = cpus if cpus is not None else os.cpu_count() or 1
    return max(2, min(blocking_stages + 1, cores + 1))


def runtime_config(config: AvatarRunConfig, status: bool, blocking_stages: int) -> RuntimeConfig:
    in_flight = config.max_in_flight or default_in_flight(blocking_stages)
    return RuntimeConfig(mode=config.mode, duration_s=default_seconds(config),
                         max_frames=config.frames, max_in_flight=in_flight,
                         status_interval_s=1.0 if status else 0.0)


def build_avatar_run(
    config: AvatarRunConfig,
    *,
    bundle: ModelBundle | None = None,
    sources: Mapping[str, SourceFactory] | None = None,
    sinks: Mapping[str, SinkFactory] | None = None,
    status: Callable[[str], None] | None = None,
    sink: Stage | None = None,
) -> AvatarRun:
    """Everything of one avatar run, built and validated, nothing started yet.

    ``bundle`` reuses an opened model (tests, benchmarks); ``sink`` replaces
    the configured sink with a given stage.
    """
    # The cheap, user-fixable parts first, so a typo fails before the model loads.
    source = open_driver(config, sources)
    out = sink or open_sink(config.sink, SinkOptions(fps=_sink_fps(config)), sinks)
    if bundle is None:
        torch.set_num_threads(config.engines.threads)
        bundle = open_bundle(resolve_checkpoint(config.checkpoint), config.engines,
                             config.random_config)
    avatars = tuple(AvatarKey(portrait) for portrait in config.avatars)
    settings: LiveSettingsBox = SettingsBox(LiveSettings(avatar=avatars[0], output=config.output))
    path = config.path
    if config.output_size is not None:
        path = replace(path, composite=replace(path.composite, output_size=config.output_size))
    stages = build_avatar_stages(settings, bundle, path, loaders=avatar_loaders())
    chain = [*stages, out]
    blocking = sum(1 for stage in chain if stage.blocking)
    pipeline = Pipeline(source, chain, runtime_config(config, status is not None, blocking),
                        on_status=status)
    return AvatarRun(pipeline, settings, bundle, avatars, stages)


def _sink_fps(config: AvatarRunConfig) -> float | Fraction:
    return config.fps or 30


def run_avatar_pipeline(run: AvatarRun, keys: bool) -> RunReport:
    """Run with terminal keys (when ``keys`` and stdin is a TTY); returns the report."""
    from stages.reenact.controls import KEY_HELP, KeyReader, LiveControls

    if not keys:
        return asyncio.run(run.pipeline.run())
    controls = LiveControls(run.settings, run.bundle.default_mode, run.avatars,
                            run.pipeline.request_stop)
    with KeyReader(controls.handle) as reader:
        if reader.active:
            print(KEY_HELP, file=sys.stderr)
        return asyncio.run(run.pipeline.run())
