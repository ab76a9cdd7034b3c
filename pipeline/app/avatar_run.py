"""Assemble an avatar run: driver source -> avatar stages -> sink, with its model.

`AvatarRunConfig` is what ``vicocam run`` composes from its arguments;
`build_avatar_run` turns it into a ready `Pipeline` (plus the settings box
and the model bundle), and `run_avatar_pipeline` runs it with the terminal
controls. The live benchmark builds the same pipeline, so what it measures is
what users run.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pipeline.app.endpoint_options import DEFAULT_SECONDS, DEFAULT_SINK
from pipeline.control import SettingsBox
from pipeline.runtime import Pipeline, RunMode, RunReport, RuntimeConfig
from pipeline.stage import Source, Stage
from stages.endpoints import SourceKind, is_endless, open_sink, open_source, source_kind
from stages.io import SinkOptions, SourceOptions
from stages.reenact.build import AvatarPathConfig, build_avatar_stages
from stages.reenact.live_settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode
from stages.reenact.person import DEFAULT_AVATAR_IDENTITY, avatar_loaders
from trt_engines.bundle import ModelBundle, ModelSpec, open_bundle

log = logging.getLogger(__name__)

DEFAULT_AVATAR = f"person:{DEFAULT_AVATAR_IDENTITY}"
DEFAULT_DRIVER = "person"


@dataclass(frozen=True, slots=True)
class AvatarRunConfig:
    """One avatar run, composed by the command line.

    Attributes:
        avatars: portrait sources (picture paths or ``person:N``); the
            first is shown at start, ``n`` cycles through them.
        driver: a source of `stages.endpoints` (``person``, ``camera:N``, a
            video file ...).
        model: the model and its engines.
        sink: a sink of `stages.endpoints` (a video file path, ``null``,
            ``virtualcam``).
        output: the initial output mode.
        mode: live (paced, drops to stay real time) or offline (every frame).
        seconds / frames: run length (``None``: the source's end, or
            `DEFAULT_SECONDS` for endless sources).
        fps: rate of the synthetic driver and of picture drivers.
        loop: replay a video file driver at its end.
        output_size: fixed output ``(width, height)``; ``None`` derives it
            from the first driver frame.
        max_in_flight: frames admitted and not yet delivered; ``None`` =
            `pipeline.runtime.default_in_flight`. With ``adaptive_in_flight`` it
            is the cap.
        adaptive_in_flight: live runs let the head limiter follow what pays
            (`pipeline.in_flight`); ``False`` keeps ``max_in_flight`` fixed.
        stage_threads: worker threads the stages are dealt into
            (`pipeline.segments`); ``None`` = one per core.
        path: fixed settings of the avatar path.
    """

    avatars: tuple[str, ...] = (DEFAULT_AVATAR,)
    driver: str = DEFAULT_DRIVER
    model: ModelSpec = field(default_factory=ModelSpec)
    sink: str = DEFAULT_SINK
    output: OutputMode = OutputMode.SIDE_BY_SIDE
    mode: RunMode = RunMode.LIVE
    seconds: float | None = None
    frames: int | None = None
    fps: float | None = None
    loop: bool = False
    output_size: tuple[int, int] | None = None
    max_in_flight: int | None = None
    adaptive_in_flight: bool = True
    stage_threads: int | None = None
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


def open_driver(config: AvatarRunConfig) -> Source:
    """The driver source, paced by the runtime at ``fps`` when it has no rate of its own."""
    options = SourceOptions(fps=config.fps, frames=config.frames, loop=config.loop)
    return open_source(config.driver, options)


def default_seconds(config: AvatarRunConfig) -> float | None:
    """How long an avatar run lasts: `run_seconds` of its driver."""
    return run_seconds(config.driver, config.loop, config.seconds, config.frames)


def run_seconds(source: str, loop: bool, seconds: float | None,
                frames: int | None) -> float | None:
    """How long a run from ``source`` lasts when neither seconds nor frames are given.

    A camera runs until stopped (``q`` or Ctrl-C); a generated source, a
    picture or a looped file would never end, so they get `DEFAULT_SECONDS`;
    a file ends by itself.
    """
    if seconds is not None or frames is not None:
        return seconds
    if source_kind(source) is SourceKind.DEVICE:
        return None
    return DEFAULT_SECONDS if is_endless(source, loop) else None


def runtime_config(config: AvatarRunConfig, status: bool, blocking_stages: int) -> RuntimeConfig:
    return RuntimeConfig(mode=config.mode, duration_s=default_seconds(config),
                         max_frames=config.frames, max_in_flight=config.max_in_flight,
                         adaptive_in_flight=config.adaptive_in_flight,
                         stage_threads=config.stage_threads,
                         status_interval_s=1.0 if status else 0.0)


def build_avatar_run(
    config: AvatarRunConfig,
    *,
    bundle: ModelBundle | None = None,
    load: Callable[[ModelSpec], ModelBundle] = open_bundle,
    status: Callable[[str], None] | None = None,
    sink: Stage | None = None,
) -> AvatarRun:
    """Everything of one avatar run, built and validated, nothing started yet.

    ``bundle`` reuses an opened model (tests, benchmarks), else ``load`` opens
    ``config.model``; ``sink`` replaces the configured sink with a given stage.
    """
    # The cheap, user-fixable parts first, so a typo fails before the model loads.
    source = open_driver(config)
    out = sink or open_sink(config.sink, sink_options(config))
    bundle = bundle or load(config.model)
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


def sink_options(config: AvatarRunConfig) -> SinkOptions:
    """A live run sends each frame on arrival (the runtime already paces and drops);
    an offline run paces a virtual camera to the frame rate."""
    pacing = "arrival" if config.mode is RunMode.LIVE else "fixed"
    return SinkOptions(fps=config.fps or 30, pacing=pacing)


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
