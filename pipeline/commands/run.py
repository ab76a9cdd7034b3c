"""``vicocam run``: build a graph from the command line and run it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError

DEFAULT_SINK = "out/vicocam.mp4"


@dataclass(frozen=True, slots=True)
class RunCommandConfig:
    """What ``vicocam run`` was asked to do (composed from the arguments)."""

    source: str
    sink: str
    mode: str
    seconds: float | None
    frames: int | None
    fps: float | None
    loop: bool
    json_path: Path | None
    status: bool


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a source through the graph into a sink",
        description=(
            "Run frames from a source through the stage graph into a sink and print a "
            "latency summary. Live mode paces the source and drops frames to stay real "
            "time; offline mode renders every frame (file to file)."
        ),
    )
    parser.add_argument(
        "--source",
        default="synthetic",
        help="synthetic[:WxH@FPS] (default), a picture file or a video file",
    )
    parser.add_argument(
        "--sink", default=DEFAULT_SINK, help=f"a .mp4/.mkv/.mov path or 'null' ({DEFAULT_SINK})"
    )
    parser.add_argument("--mode", choices=("live", "offline"), default="live")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this long (default 10 s for endless sources)",
    )
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--fps", type=float, default=None, help="rate of synthetic/picture sources")
    parser.add_argument("--loop", action="store_true", help="replay a video file at its end")
    parser.add_argument("--json", type=Path, default=None, help="write run metrics as JSON here")
    parser.add_argument("--no-status", action="store_true", help="no live one-line status")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = RunCommandConfig(
        source=args.source,
        sink=args.sink,
        mode=args.mode,
        seconds=args.seconds,
        frames=args.frames,
        fps=args.fps,
        loop=args.loop,
        json_path=args.json,
        status=not args.no_status and sys.stderr.isatty(),
    )
    return execute(config)


def execute(config: RunCommandConfig) -> int:
    from pipeline.runtime import (
        Pipeline,
        RunMode,
        RuntimeConfig,
        SourceFailedError,
        StageFailedError,
    )
    from pipeline.summary import format_summary
    from stages.io import SinkOptions, SourceOptions, open_sink, open_source

    if config.frames is not None and config.frames < 1:
        raise UserError("--frames must be >= 1")
    try:
        source = open_source(
            config.source, SourceOptions(fps=config.fps, frames=config.frames, loop=config.loop)
        )
        sink = open_sink(config.sink, SinkOptions(fps=config.fps or 30))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    seconds = config.seconds
    if seconds is None and config.frames is None and _is_endless(config.source, config.loop):
        seconds = 10.0
    runtime = RuntimeConfig(
        mode=RunMode(config.mode),
        duration_s=seconds,
        status_interval_s=1.0 if config.status else 0.0,
    )
    pipeline = Pipeline(source, [sink], runtime, on_status=_print_status)
    try:
        report = asyncio.run(pipeline.run())
    except (SourceFailedError, StageFailedError) as exc:
        raise UserError(str(exc)) from exc
    if config.status:
        print(file=sys.stderr)
    print(format_summary(report, sink=config.sink))
    if config.json_path is not None:
        config.json_path.parent.mkdir(parents=True, exist_ok=True)
        config.json_path.write_text(report.metrics.to_json() + "\n")
    return 0


def _is_endless(source: str, loop: bool) -> bool:
    return (
        loop
        or source.split(":", 1)[0] == "synthetic"
        or Path(source).suffix.lower()
        in {
            ".png",
            ".jpg",
            ".jpeg",
            ".bmp",
            ".webp",
        }
    )


def _print_status(line: str) -> None:
    print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
