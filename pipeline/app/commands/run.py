"""``vicocam run``: drive an avatar (or just move frames) from a source into a sink.

Two forms, one command:

* the avatar path (the default): ``--avatar PICTURE`` (repeatable) driven by
  ``--driver`` (any source of `stages.endpoints`: ``person``, ``camera:N``, a
  video file ...) into ``--sink``. With no arguments at all it is the built-in
  demo: a held-out synthetic person drives a synthetic avatar, written side by
  side to out/vicocam.mp4.
* frames only: ``--source SPEC`` without ``--avatar``/``--driver`` moves the
  source's frames through the runtime into the sink (no model), as a
  pipeline check.

This module parses and composes configs; `pipeline.app.avatar_run` assembles
the avatar graph.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.app.endpoint_options import (
    DEFAULT_SINK,
    add_avatar_options,
    add_run_length_options,
    add_sink_option,
    driver_spec,
    source_spec,
)
from pipeline.app.model_options import add_model_options, model_spec, open_model
from pipeline.app.options import (
    add_in_flight_options,
    add_json_option,
    print_status,
    size,
    write_text,
)
from pipeline.app.real_faces import run_notice, warn
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.app.avatar_run import AvatarRun, AvatarRunConfig
    from pipeline.runtime import Pipeline, RunReport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="drive an avatar from a camera, a video or the synthetic world",
        description=(
            "Animate a portrait with the face of a driver and write the result to a sink, "
            "printing a latency summary. With no arguments: a held-out synthetic person "
            "drives a synthetic avatar into out/vicocam.mp4 (driver | avatar). Live mode "
            "paces the driver and drops frames to stay real time; offline mode renders every "
            "frame. Keys while running (in a terminal): r reset reference, +/- strength, "
            "m motion mode, o output mode, n next avatar, q quit."
        ),
    )
    _avatar_arguments(parser)
    add_model_options(parser)
    parser.add_argument("--source", default=None, type=source_spec,
                        help="frames-only run (no avatar): pattern[:WxH@FPS], a picture or a "
                             "video file")
    add_sink_option(parser, DEFAULT_SINK)
    parser.add_argument("--mode", choices=("live", "offline"), default="live")
    add_in_flight_options(parser)
    add_run_length_options(parser)
    add_json_option(parser, "the run's metrics")
    parser.add_argument("--no-status", action="store_true", help="no live one-line status")
    parser.set_defaults(handler=handle)


def _avatar_arguments(parser: argparse.ArgumentParser) -> None:
    add_avatar_options(parser, repeatable=True, output_mode="side_by_side",
                       output_help="side_by_side (driver | avatar, default), paste (the avatar "
                                   "portrait) or crop")
    parser.add_argument("--driver", default=None, type=driver_spec,
                        help="person (default: a held-out synthetic person), camera:N or a "
                             "video file")
    parser.add_argument("--output-size", default=None, metavar="WxH", type=size,
                        help="fixed output size (default: from the driver picture)")
    parser.add_argument("--no-keys", action="store_true", help="no keyboard controls")


def handle(args: argparse.Namespace) -> int:
    from pipeline.memory import tune_allocator

    tune_allocator()  # a live run lasts a meeting: see pipeline.memory
    status = not args.no_status and sys.stderr.isatty()
    if args.source is not None:
        if args.avatar or args.driver is not None:
            raise UserError(
                "--source is for runs without an avatar; drive an avatar with "
                "--driver (camera:N, a video file or person)"
            )
        return run_frames(args, status)
    return execute_avatar(avatar_config(args), status=status, keys=not args.no_keys,
                          json_path=args.json)


def avatar_config(args: argparse.Namespace) -> AvatarRunConfig:
    """The `AvatarRunConfig` the arguments ask for; `UserError` for invalid values."""
    from pipeline.app.avatar_run import DEFAULT_AVATAR, DEFAULT_DRIVER, AvatarRunConfig
    from pipeline.runtime import RunMode
    from stages.reenact.output_mode import OutputMode

    spec = model_spec(args)
    try:
        return AvatarRunConfig(
            avatars=tuple(args.avatar) or (DEFAULT_AVATAR,), driver=args.driver or DEFAULT_DRIVER,
            model=spec, sink=args.sink, output=OutputMode(args.output_mode),
            mode=RunMode(args.mode), seconds=args.seconds, frames=args.frames, fps=args.fps,
            loop=args.loop, output_size=args.output_size, max_in_flight=args.max_in_flight,
            adaptive_in_flight=args.adaptive_in_flight, stage_threads=args.stage_threads)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def execute_avatar(config: AvatarRunConfig, *, status: bool = False, keys: bool = True,
                   json_path: Path | None = None) -> int:
    """Build and run the avatar graph, print the summary; 0 on success."""
    from pipeline.app.avatar_run import run_avatar_pipeline
    from pipeline.heap import frozen_heap

    run = _build(config, status)
    warn(run_notice(run.bundle.domain, config.avatars, config.driver))
    try:
        with frozen_heap():  # no full collection walks the model and modules again
            report = _run(lambda: run_avatar_pipeline(run, keys))
    finally:
        run.bundle.close()
    _finish(report, config.sink, json_path, status)
    trained = "" if run.bundle.trained else " (random weights: not a trained model)"
    print(f"  model       {run.bundle.label}{trained}")
    return 0


def _build(config: AvatarRunConfig, status: bool) -> AvatarRun:
    from pipeline.app.avatar_run import build_avatar_run

    try:
        return build_avatar_run(config, load=open_model,
                                status=print_status if status else None)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc


def _run(go: Callable[[], RunReport]) -> RunReport:
    from pipeline.runtime import SourceFailedError, StageFailedError

    try:
        return go()
    except (SourceFailedError, StageFailedError) as exc:
        raise UserError(str(exc)) from exc


def _finish(report: RunReport, sink: str, json_path: Path | None, status: bool) -> None:
    from pipeline.summary import format_summary

    if status:
        print(file=sys.stderr)
    print(format_summary(report, sink=sink))
    write_text(json_path, report.metrics.to_json())


# --------------------------------------------------------------------------- frames only


def run_frames(args: argparse.Namespace, status: bool) -> int:
    """A frames-only run: source -> sink through the runtime, no model."""
    pipeline = _frames_pipeline(args, status)
    report = _run(lambda: asyncio.run(pipeline.run()))
    _finish(report, args.sink, args.json, status)
    return 0


def _frames_pipeline(args: argparse.Namespace, status: bool) -> Pipeline:
    from pipeline.app.avatar_run import run_seconds
    from pipeline.runtime import Pipeline, RunMode, RuntimeConfig
    from stages.endpoints import open_sink, open_source
    from stages.io import SinkOptions, SourceOptions

    pacing = "arrival" if args.mode == "live" else "fixed"
    try:
        source = open_source(args.source, SourceOptions(fps=args.fps, frames=args.frames,
                                                        loop=args.loop))
        sink = open_sink(args.sink, SinkOptions(fps=args.fps or 30, pacing=pacing))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    seconds = run_seconds(args.source, args.loop, args.seconds, args.frames)
    runtime = RuntimeConfig(mode=RunMode(args.mode), duration_s=seconds,
                            status_interval_s=1.0 if status else 0.0)
    return Pipeline(source, [sink], runtime, on_status=print_status)
