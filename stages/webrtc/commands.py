"""``vicocam serve`` and ``vicocam client``: thin parsers over `stages.webrtc`.

Nothing heavy is imported until a handler runs, so ``vicocam --help`` stays
instant and works without aiortc.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserError

if TYPE_CHECKING:
    from stages.webrtc.model import AvatarService, ServeModelConfig
    from stages.webrtc.playout import PlayoutDelay
    from stages.webrtc.server import ServerConfig, WebRTCServer

OUTPUT_MODES = ("paste", "crop", "side_by_side")
BACKENDS = ("torch", "onnxruntime", "tensorrt")

_SIZE = re.compile(r"^(\d+)x(\d+)$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_serve(subparsers)
    _register_client(subparsers)


# ---- serve ----------------------------------------------------------------------------------
def _register_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the browser page and WebRTC peers",
        description=("Serve a web page that sends the browser's camera over WebRTC and shows "
                     "the avatar driven by it; the model is loaded once, each peer gets its "
                     "own pipeline and live settings (avatar, strength, reset, motion and "
                     "output mode, from the page). Binds 127.0.0.1 unless --host says "
                     "otherwise; any other address requires an access token (--token, or "
                     "one is generated and printed)."))
    _server_arguments(parser)
    _model_arguments(parser)
    parser.set_defaults(handler=handle_serve)


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080; 0 = any free)")
    parser.add_argument("--token", default=None, help="access token required from clients")
    parser.add_argument("--max-sessions", type=int, default=4, help="peers at once (4)")
    parser.add_argument("--avatars", type=Path, default=None,
                        help="folder of preset avatar pictures the page offers")
    parser.add_argument("--stall-timeout", type=float, default=10.0,
                        help="close a session whose video stopped this many seconds ago (10)")
    parser.add_argument("--stun", action="append", default=[], metavar="URL",
                        help="STUN/TURN server for peers behind NAT (repeatable)")
    parser.add_argument("--ice-host", default=None,
                        help="use only this address for ICE (e.g. 127.0.0.1 for local tests)")
    parser.add_argument("--playout-delay", default="0", metavar="MS|MIN:MAX|browser",
                        help="how long browsers may buffer the returned video, in 10 ms "
                             "steps: 0 (default) shows each frame as soon as it is decoded; "
                             "MS allows smoothing up to MS; MIN:MAX within that range; "
                             "'browser' leaves it to the browser, whose buffer grows under load")
    parser.add_argument("--upload-start-kbps", type=int, default=1000, metavar="KBPS",
                        help="bitrate browsers start sending their camera at (1000; 0 = the "
                             "browser's own, 300)")
    parser.add_argument("--upload-floor-kbps", type=int, default=300, metavar="KBPS",
                        help="least upload bandwidth reported to browsers (300; 0 = none): "
                             "without it a detailed camera picture can lock a browser at a "
                             "few frames per second; packet loss still lowers its rate")


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--avatar", default=None, metavar="PICTURE",
                        help="portrait every session starts with; synthetic:N is a held-out "
                             "synthetic person (default synthetic:1)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model weights (default: the bundled demo model when present)")
    parser.add_argument("--model-config", default=None,
                        help="configuration built with random weights when no model is found")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="inference backend (default: the fastest for the device)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda:N")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads per model engine (default 1)")
    parser.add_argument("--output-mode", choices=OUTPUT_MODES, default="paste",
                        help="what a session starts showing: paste (the avatar portrait, "
                             "default), crop or side_by_side (camera | avatar)")
    parser.add_argument("--identity", action="store_true",
                        help="no model: send every peer its camera back unchanged (to debug "
                             "or measure the transport)")


def handle_serve(args: argparse.Namespace) -> int:
    from stages.webrtc.server import serve

    server, service = build_server(args)
    try:
        asyncio.run(serve(server, ready=lambda url: _announce(url, server.token)))
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    finally:
        if service is not None:
            service.close()
    return 0


def build_server(args: argparse.Namespace) -> tuple[WebRTCServer, AvatarService | None]:
    """The server ``vicocam serve`` runs, with its model loaded (``None`` with --identity).

    The cheap, user-fixable checks come first, so a typo fails before the
    model loads. The caller closes the service (the model's engines).
    """
    from stages.webrtc.server import WebRTCServer
    from stages.webrtc.session import identity_factory

    config = server_config(args)
    if args.identity:
        return WebRTCServer(config, identity_factory), None
    service = _open_service(serve_model_config(args))
    server = WebRTCServer(dataclasses.replace(config, settings=service.settings),
                          service.factory, prepare_avatar=service.factory.prepare)
    return server, service


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The `ServerConfig` of ``vicocam serve``'s arguments; `UserError` for invalid values."""
    from stages.webrtc.server import ServerConfig
    from stages.webrtc.session import SessionConfig

    try:
        session = SessionConfig(stall_timeout_s=args.stall_timeout, ice_servers=tuple(args.stun),
                                playout_delay=parse_playout_delay(args.playout_delay),
                                start_bitrate_kbps=_positive_or_none(args.upload_start_kbps,
                                                                     "--upload-start-kbps"),
                                min_remb_bps=_kbps_to_bps(args.upload_floor_kbps))
        config = ServerConfig(host=args.host, port=args.port, token=args.token,
                              max_sessions=args.max_sessions, avatars_dir=args.avatars,
                              ice_host=args.ice_host, session=session)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if config.avatars_dir is not None and not config.avatars_dir.is_dir():
        raise UserError(f"--avatars {config.avatars_dir}: no such folder")
    return config


def _positive_or_none(value: int, flag: str) -> int | None:
    if value < 0:
        raise ValueError(f"{flag} must be >= 0 (0 = off), got {value}")
    return value or None


def _kbps_to_bps(kbps: int) -> int | None:
    value = _positive_or_none(kbps, "--upload-floor-kbps")
    return None if value is None else value * 1000


def parse_playout_delay(text: str) -> PlayoutDelay | None:
    """``"browser"`` -> None, ``"MS"`` -> at most MS, ``"MIN:MAX"``; ValueError if malformed."""
    from stages.webrtc.playout import PlayoutDelay

    if text.strip().lower() == "browser":
        return None
    low, sep, high = text.partition(":")
    try:
        values = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise ValueError(f"--playout-delay {text!r}: give MS, MIN:MAX (milliseconds) "
                         "or 'browser'") from None
    if not sep and values[0] != 0:
        values = (0, values[0])  # one number is the most a browser may hold a frame
    return PlayoutDelay(*values)


def serve_model_config(args: argparse.Namespace) -> ServeModelConfig:
    """The `ServeModelConfig` of ``vicocam serve``'s arguments; `UserError` for invalid values."""
    from stages.reenact.model import DEFAULT_RANDOM_CONFIG, EngineOptions
    from stages.reenact.settings import OutputMode
    from stages.webrtc.model import ServeModelConfig

    try:
        config = ServeModelConfig(
            checkpoint=args.checkpoint,
            random_config=args.model_config or DEFAULT_RANDOM_CONFIG,
            engines=EngineOptions(backend=args.backend, device=args.device, threads=args.threads),
            output=OutputMode(args.output_mode),
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.avatar is not None:
        config = dataclasses.replace(config, avatar=args.avatar)
    return config


def _open_service(config: ServeModelConfig) -> AvatarService:
    from stages.reenact.model import announce_model
    from stages.webrtc.model import open_avatar_service
    from trt_engines.errors import BackendUnavailableError

    print("vicocam: loading the model and preparing the avatar (the first run of a model "
          "also exports its graphs)...", file=sys.stderr)
    try:
        service = open_avatar_service(config)
    except (BackendUnavailableError, ValueError, OSError, RuntimeError) as exc:
        raise UserError(f"cannot serve the avatar {config.avatar!r}: {exc}") from exc
    announce_model(service.bundle)
    return service


def _announce(url: str, token: str | None) -> None:
    print(f"vicocam: open {url} in a browser (Ctrl-C to stop)", file=sys.stderr)
    if "//0.0.0.0:" in url or "//[::]:" in url:
        print("vicocam: from another machine, use this machine's name or address in place "
              "of the wildcard address", file=sys.stderr)
    if token:
        print("vicocam: the access token is in that URL; share it only with people who may "
              "use this server", file=sys.stderr)


# ---- client ---------------------------------------------------------------------------------
def _register_client(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "client", help="send this camera to a remote 'vicocam serve', get the avatar back",
        description=("Send a local camera to a 'vicocam serve' (for example on a GPU machine) "
                     "over WebRTC and write the returned avatar into the local virtual "
                     "camera or a video file."))
    parser.add_argument("--server", required=True,
                        help="the server's URL, e.g. http://gpu-box:8080/?token=...")
    parser.add_argument("--token", default=None, help="access token (if not in the URL)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", default="0", help="camera index or device path (0)")
    source.add_argument("--source", default=None,
                        help="send this instead of a camera: synthetic[:WxH@FPS] or a video file")
    parser.add_argument("--sink", default="virtualcam",
                        help="virtualcam (default) or an output video file (.mp4/.mkv/.mov)")
    parser.add_argument("--size", default="640x480", metavar="WxH",
                        help="camera size to ask for, and the virtual camera's size (640x480)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (30)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--virtualcam-device", default=None, help="e.g. /dev/video10")
    parser.add_argument("--virtualcam-backend", default=None,
                        help="v4l2loopback, obs or unitycapture (default: the platform's)")
    parser.add_argument("--ice-host", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle_client)


def handle_client(args: argparse.Namespace) -> int:
    from stages.webrtc.client import ClientConfig, ClientError, run_client

    size = parse_size(args.size)
    config = ClientConfig(server=args.server, token=args.token, duration_s=args.seconds,
                          ice_host=args.ice_host)
    source = _client_source(args, size)
    sink = _client_sink(args, size)
    try:
        report = asyncio.run(run_client(config, source, sink))
    except ClientError as exc:
        raise UserError(str(exc)) from exc
    print(f"vicocam: sent {report.frames_sent} frames, received {report.frames_received} "
          f"(session {report.session})")
    if report.frames_received == 0:
        raise UserError("no video came back from the server; check its log")
    return 0


def parse_size(text: str) -> tuple[int, int]:
    match = _SIZE.match(text)
    if match is None:
        raise UserError(f"--size {text!r}: write WIDTHxHEIGHT, e.g. 640x480")
    return int(match.group(1)), int(match.group(2))


def _client_source(args: argparse.Namespace, size: tuple[int, int]) -> Any:
    if args.source is not None:
        from stages.io import SourceOptions, open_source

        try:
            return open_source(args.source, SourceOptions(fps=args.fps, size=size, loop=True))
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    from stages.camera import CameraConfig, CameraSource

    device: int | str = int(args.camera) if str(args.camera).isdigit() else args.camera
    try:
        return CameraSource(CameraConfig(device=device, width=size[0], height=size[1],
                                         fps=args.fps))
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _client_sink(args: argparse.Namespace, size: tuple[int, int]) -> Any:
    try:
        if args.sink == "virtualcam":
            from stages.virtualcam import VirtualCamConfig, VirtualCamSink

            return VirtualCamSink(VirtualCamConfig(
                width=size[0], height=size[1], fps=args.fps, device=args.virtualcam_device,
                backend=args.virtualcam_backend))
        from stages.io import VideoFileSink, VideoFileSinkConfig

        return VideoFileSink(VideoFileSinkConfig(args.sink, fps=args.fps))
    except ValueError as exc:
        raise UserError(f"--sink {args.sink!r}: {exc}") from exc
