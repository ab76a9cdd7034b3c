"""``vicocam run``: drive an avatar (or just move frames) from a source into a sink.

Two forms, one command:

* the avatar path (the default): ``--avatar PICTURE`` (repeatable) driven by
  ``--driver`` (``synthetic``, ``camera:N`` or a video file) into ``--sink``.
  With no arguments at all it is the built-in demo: a held-out synthetic
  person drives a synthetic avatar, written side by side to out/vicocam.mp4.
* frames only: ``--source SPEC`` without ``--avatar``/``--driver`` moves the
  source's frames through the runtime into the sink (no model), as a
  pipeline check.

This module only parses and composes configs; the avatar graph is built by
`stages.reenact.app`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.runtime import RunReport
    from pipeline.stage import Source, Stage
    from stages.io import SinkFactory, SinkOptions, SourceFactory, SourceOptions
    from stages.reenact.app import AvatarRun, AvatarRunConfig

DEFAULT_SINK = "out/vicocam.mp4"
OUTPUT_MODES = ("side_by_side", "paste", "crop")
BACKENDS = ("torch", "onnxruntime", "tensorrt")
_SIZE = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True, slots=True)
class RunCommandConfig:
    """A frames-only run (``--source`` without an avatar)."""

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
    _common_arguments(parser)
    parser.set_defaults(handler=handle)


def _avatar_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--avatar",
        action="append",
        default=[],
        metavar="PICTURE",
        help="portrait to animate (repeatable; 'n' switches); synthetic:N is a "
        "synthetic person (default synthetic:1)",
    )
    parser.add_argument(
        "--driver", default=None, help="synthetic (default), camera:N or a video file"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="model weights (default: the bundled demo model when present)",
    )
    parser.add_argument(
        "--model-config",
        default=None,
        help="configuration built with random weights when no model is found "
        "(no --checkpoint and no bundled model)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="inference backend (default: the fastest for the device)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda:N")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads per model engine (default 1: stages run in parallel already)",
    )
    parser.add_argument(
        "--output-mode",
        choices=OUTPUT_MODES,
        default="side_by_side",
        help="side_by_side (driver | avatar), paste (avatar portrait) or crop",
    )
    parser.add_argument(
        "--output-size",
        default=None,
        metavar="WxH",
        help="fixed output size (default: from the driver picture)",
    )
    parser.add_argument("--no-keys", action="store_true", help="no keyboard controls")


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default=None,
        help="frames-only run (no avatar): synthetic[:WxH@FPS], a picture or a video file",
    )
    parser.add_argument(
        "--sink",
        default=DEFAULT_SINK,
        help=f"a .mp4/.mkv/.mov path, null, or virtualcam ({DEFAULT_SINK})",
    )
    parser.add_argument("--mode", choices=("live", "offline"), default="live")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this long (default: 10 s for the synthetic driver, "
        "pictures and loops; a camera runs until q or Ctrl-C)",
    )
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument(
        "--fps", type=float, default=None, help="rate of synthetic and picture sources"
    )
    parser.add_argument("--loop", action="store_true", help="replay a video file at its end")
    parser.add_argument("--json", type=Path, default=None, help="write run metrics as JSON here")
    parser.add_argument("--no-status", action="store_true", help="no live one-line status")


def handle(args: argparse.Namespace) -> int:
    status = not args.no_status and sys.stderr.isatty()
    if args.source is not None:
        if args.avatar or args.driver is not None:
            raise UserError(
                "--source is for runs without an avatar; drive an avatar with "
                "--driver (camera:N, a video file or synthetic)"
            )
        return execute(_io_config(args, status))
    return execute_avatar(
        avatar_config(args), status=status, keys=not args.no_keys, json_path=args.json
    )


# --------------------------------------------------------------------------- avatar runs


def avatar_config(args: argparse.Namespace) -> AvatarRunConfig:
    """The `AvatarRunConfig` the arguments ask for; `UserError` for invalid values."""
    from pipeline.runtime import RunMode
    from stages.reenact.app import DEFAULT_AVATAR, DEFAULT_DRIVER, AvatarRunConfig
    from stages.reenact.model import DEFAULT_RANDOM_CONFIG, EngineOptions
    from stages.reenact.settings import OutputMode

    if args.model_config is not None:
        from networks.config import get_config

        try:
            get_config(args.model_config)
        except (KeyError, ValueError) as exc:
            raise UserError(str(exc).strip("'\"")) from None
    try:
        return AvatarRunConfig(
            avatars=tuple(args.avatar) or (DEFAULT_AVATAR,),
            driver=args.driver or DEFAULT_DRIVER,
            checkpoint=args.checkpoint,
            random_config=args.model_config or DEFAULT_RANDOM_CONFIG,
            engines=EngineOptions(backend=args.backend, device=args.device, threads=args.threads),
            sink=args.sink,
            output=OutputMode(args.output_mode),
            mode=RunMode(args.mode),
            seconds=args.seconds,
            frames=args.frames,
            fps=args.fps,
            loop=args.loop,
            output_size=_parse_size(args.output_size),
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _SIZE.match(text)
    if match is None:
        raise UserError(f"--output-size {text!r}: write WIDTHxHEIGHT, e.g. 1280x480")
    return int(match.group(1)), int(match.group(2))


def execute_avatar(
    config: AvatarRunConfig,
    *,
    status: bool = False,
    keys: bool = True,
    json_path: Path | None = None,
) -> int:
    """Build and run the avatar graph, print the summary; 0 on success."""
    from pipeline.runtime import SourceFailedError, StageFailedError
    from stages.reenact.app import run_avatar_pipeline
    from stages.reenact.model import announce_model

    print(
        "vicocam: preparing the model and the avatar (the first run of a model also "
        "exports its graphs)...",
        file=sys.stderr,
    )
    run = _build(config, status)
    announce_model(run.bundle)
    try:
        report = run_avatar_pipeline(run, keys)
    except (SourceFailedError, StageFailedError) as exc:
        raise UserError(str(exc)) from exc
    finally:
        run.bundle.close()
    if status:
        print(file=sys.stderr)
    _finish(report, run, config.sink, json_path)
    return 0


def _build(config: AvatarRunConfig, status: bool) -> AvatarRun:
    from stages.reenact.app import build_avatar_run
    from trt_engines.errors import BackendUnavailableError

    try:
        return build_avatar_run(
            config,
            sources=source_registry(),
            sinks=sink_registry(config.mode.value),
            status=_print_status if status else None,
        )
    except (BackendUnavailableError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc


def _finish(report: RunReport, run: AvatarRun, sink: str, json_path: Path | None) -> None:
    from pipeline.summary import format_summary

    print(format_summary(report, sink=sink))
    trained = "" if run.bundle.trained else " (random weights: not a trained model)"
    print(f"  model       {run.bundle.label}{trained}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(report.metrics.to_json() + "\n")


def source_registry() -> dict[str, SourceFactory]:
    """The named sources of ``vicocam run``: the built-ins plus ``camera[:N]``."""
    from stages.io import default_source_registry

    registry = default_source_registry()
    registry["camera"] = _camera
    return registry


def sink_registry(mode: str = "live") -> dict[str, SinkFactory]:
    """The named sinks of ``vicocam run``: the built-ins plus ``virtualcam[:DEVICE]``.

    A live run sends each frame to the virtual camera as it arrives (the runtime
    already paces and drops); an offline run paces the camera to its frame rate.
    """
    from stages.io import default_sink_registry

    pacing = "arrival" if mode == "live" else "fixed"

    def virtualcam(arg: str, options: SinkOptions) -> Stage:
        from stages.virtualcam import VirtualCamConfig, VirtualCamSink

        config = VirtualCamConfig(fps=float(options.fps), device=arg or None, pacing=pacing)
        return VirtualCamSink(config)

    registry = default_sink_registry()
    registry["virtualcam"] = virtualcam
    return registry


def _camera(arg: str, options: SourceOptions) -> Source:
    from stages.camera import CameraConfig, CameraSource

    device: int | str = int(arg) if arg.isdigit() else (arg or 0)
    return CameraSource(CameraConfig(device=device, fps=float(options.fps or 30)))


# --------------------------------------------------------------------------- frames only


def _io_config(args: argparse.Namespace, status: bool) -> RunCommandConfig:
    return RunCommandConfig(
        source=args.source,
        sink=args.sink,
        mode=args.mode,
        seconds=args.seconds,
        frames=args.frames,
        fps=args.fps,
        loop=args.loop,
        json_path=args.json,
        status=status,
    )


def execute(config: RunCommandConfig) -> int:
    """A frames-only run: source -> sink through the runtime, no model."""
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
            config.source,
            SourceOptions(fps=config.fps, frames=config.frames, loop=config.loop),
            source_registry(),
        )
        sink = open_sink(config.sink, SinkOptions(fps=config.fps or 30), sink_registry(config.mode))
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
        or source.split(":", 1)[0] in {"synthetic", "camera"}
        or Path(source).suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
    )


def _print_status(line: str) -> None:
    print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
