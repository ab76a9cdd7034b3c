"""``vicocam serve``: the browser page and WebRTC peers, each driving the avatar.

Nothing heavy is imported until the handler runs, so ``vicocam --help`` stays
instant and works without aiortc.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.app.cluster.options import add_cluster_options
from pipeline.app.endpoint_options import add_avatar_options
from pipeline.app.ice_options import add_ice_options, ice_servers
from pipeline.app.model_options import add_model_options, model_spec, open_model
from pipeline.app.options import add_encoder_option, add_in_flight_options
from pipeline.app.real_faces import serve_notice, warn
from pipeline.app.tls_options import add_tls_options, announce_certificate, tls_files
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.app.serving import AvatarService, ServeConfig
    from stages.webrtc.aiortc_patches import PlayoutDelay
    from stages.webrtc.server import ServerConfig, WebRTCServer
    from trt_engines.batching import BatchConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the browser page and WebRTC peers",
        description=("Serve a web page that sends the browser's camera over WebRTC and shows "
                     "the avatar driven by it; the model is loaded once, each peer gets its "
                     "own pipeline and live settings (avatar, strength, reset, motion and "
                     "output mode, from the page). Binds 127.0.0.1 unless --host says "
                     "otherwise; any other address requires an access token (--token, or "
                     "one is generated and printed). Browsers reaching it by any name but "
                     "localhost need HTTPS for the camera: --tls self-signed or "
                     "--tls-cert/--tls-key."))
    _server_arguments(parser)
    add_ice_options(parser)
    add_tls_options(parser)
    _avatar_arguments(parser)
    add_model_options(parser)
    add_in_flight_options(parser)
    add_cluster_options(parser)
    parser.set_defaults(handler=handle_serve)


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080; 0 = any free)")
    parser.add_argument("--token", default=None, help="access token required from clients")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer to browsers that reach the server as NAME "
                             "(repeatable). A loopback server refuses Host names other than "
                             "localhost, 127.x.x.x and [::1] (DNS rebinding); once names are "
                             "given, a server on any address accepts only those and these")
    parser.add_argument("--max-sessions", type=int, default=4, help="peers at once (4)")
    parser.add_argument("--max-pending", type=int, default=2, metavar="N",
                        help="peers that may be connecting at once, all clients together (2); "
                             "more offers get 503 with Retry-After, so a flood of offers from "
                             "many addresses cannot take every slot")
    parser.add_argument("--connect-timeout", type=float, default=4.0, metavar="S",
                        help="give a session's slot back when no video came this many "
                             "seconds after the answer (4; raise it for peers behind TURN)")
    parser.add_argument("--avatars", type=Path, default=None,
                        help="folder of preset avatar pictures the page offers")
    parser.add_argument("--stall-timeout", type=float, default=10.0,
                        help="close a session whose video stopped this many seconds ago (10)")
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
    add_encoder_option(parser)


def _avatar_arguments(parser: argparse.ArgumentParser) -> None:
    add_avatar_options(parser, repeatable=False, output_mode="paste",
                       output_help="what a session starts showing: paste (the avatar portrait, "
                                   "default), crop or side_by_side (camera | avatar)")
    parser.add_argument("--identity", action="store_true",
                        help="no model: send every peer its camera back unchanged (to debug "
                             "or measure the transport)")
    parser.add_argument("--no-batching", dest="batching", action="store_false",
                        help="every session calls the model engines itself (default: the "
                             "sessions' motion and generate calls due at once share one call)")
    parser.add_argument("--batch-wait-ms", type=float, default=None, metavar="MS",
                        help="longest a batched call waits for the other sessions due "
                             "(4 on a GPU, 0 on the CPU, where a batch costs about its "
                             "parts; a lone session never waits)")


def handle_serve(args: argparse.Namespace) -> int:
    from pipeline.heap import frozen_heap
    from pipeline.memory import tune_allocator
    from stages.webrtc.server import serve

    tune_allocator()  # a server runs for days: see pipeline.memory

    if args.cluster is not None:
        from pipeline.app.cluster.command import serve_cluster

        return serve_cluster(args)
    server, service = build_server(args)
    try:
        with frozen_heap():  # no full collection walks the model and modules again
            asyncio.run(serve(server, ready=lambda url: announce(url, server)))
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    finally:
        if service is not None:
            service.close()
    return 0


def build_server(args: argparse.Namespace) -> tuple[WebRTCServer, AvatarService | None]:
    """The server ``vicocam serve`` runs, with its model loaded (``None`` with --identity).

    The cheap, user-fixable checks come first, so a typo fails before the
    model loads. The caller closes the service (the model's engines). A model
    of the synthetic world gets the real-faces warning, printed here and put
    on the page: a browser's camera films a real face.
    """
    from stages.webrtc.aiortc_patches import require_supported_aiortc

    require_supported_aiortc()  # fail at start, not when the first peer connects
    return open_server(server_config(args), None if args.identity else serve_config(args))


def open_server(config: ServerConfig,
                serving: ServeConfig | None) -> tuple[WebRTCServer, AvatarService | None]:
    """`build_server` from its composed configs; ``serving`` ``None`` = no model (--identity).

    A cluster replica builds its server with this too (`pipeline.app.cluster`),
    so it loads its model exactly as ``vicocam serve`` does.
    """
    from stages.webrtc.peer_session import identity_factory
    from stages.webrtc.server import WebRTCServer

    if serving is None:
        return WebRTCServer(config, identity_factory), None
    service = _open_service(serving)
    notice = serve_notice(service.bundle.domain, serving.avatar)
    warn(notice)
    server = WebRTCServer(dataclasses.replace(config, settings=service.settings, notice=notice),
                          service.factory, prepare_avatar=service.factory.prepare)
    return server, service


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The `ServerConfig` of ``vicocam serve``'s arguments; `UserError` for invalid values."""
    from stages.webrtc.peer_session import SessionConfig
    from stages.webrtc.server import ServerConfig

    ice = ice_servers(args)
    try:
        session = SessionConfig(stall_timeout_s=args.stall_timeout, ice_servers=ice,
                                connect_timeout_s=args.connect_timeout,
                                max_in_flight=args.max_in_flight,
                                adaptive_in_flight=args.adaptive_in_flight,
                                stage_threads=args.stage_threads,
                                playout_delay=parse_playout_delay(args.playout_delay),
                                start_bitrate_kbps=_positive_or_none(args.upload_start_kbps,
                                                                     "--upload-start-kbps"),
                                min_remb_bps=_kbps_to_bps(args.upload_floor_kbps),
                                encode_in_sink=args.encode_in == "sink")
        config = ServerConfig(host=args.host, port=args.port, token=args.token,
                              max_sessions=args.max_sessions, avatars_dir=args.avatars,
                              max_pending=args.max_pending,
                              ice_host=args.ice_host, session=session,
                              allowed_hosts=tuple(args.allow_host))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    config = dataclasses.replace(config, tls=tls_files(args))
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
    from stages.webrtc.aiortc_patches import PlayoutDelay

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


def _batching(args: argparse.Namespace) -> BatchConfig | None:
    """The batcher's settings, or ``None`` with ``--no-batching``."""
    from trt_engines.batching import BatchConfig

    if not args.batching:
        return None
    try:
        wait = None if args.batch_wait_ms is None else args.batch_wait_ms / 1e3
        return BatchConfig(max_batch=args.max_sessions, max_wait_s=wait)
    except ValueError as exc:
        raise UserError(f"--batch-wait-ms / --max-sessions: {exc}") from None


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """The `ServeConfig` of ``vicocam serve``'s arguments; `UserError` for invalid values."""
    from pipeline.app.serving import ServeConfig
    from stages.reenact.output_mode import OutputMode

    # The engines' largest batch is the session limit: one call may carry every session.
    config = ServeConfig(model=model_spec(args, max_batch=args.max_sessions),
                         output=OutputMode(args.output_mode), batching=_batching(args))
    if args.avatar is not None:
        config = dataclasses.replace(config, avatar=args.avatar)
    return config


def _open_service(config: ServeConfig) -> AvatarService:
    from pipeline.app.serving import open_avatar_service

    bundle = open_model(config.model)
    print("vicocam: preparing the avatar...", file=sys.stderr)
    try:
        return open_avatar_service(config, bundle)
    except (ValueError, OSError, RuntimeError) as exc:
        bundle.close()
        raise UserError(f"cannot serve the avatar {config.avatar!r}: {exc}") from exc


def announce(url: str, server: WebRTCServer) -> None:
    """Say where ``server`` serves and what its users need to know."""
    from stages.webrtc.ice import is_loopback

    print(f"vicocam: open {url} in a browser (Ctrl-C to stop)", file=sys.stderr)
    if server.config.tls is not None:
        announce_certificate(server.config.tls)
    if "//0.0.0.0:" in url or "//[::]:" in url:
        print("vicocam: from another machine, use this machine's name or address in place "
              "of the wildcard address", file=sys.stderr)
    for entry in server.config.session.ice_servers:
        print(f"vicocam: ICE server {entry.describe()}", file=sys.stderr)
    if server.token:
        print("vicocam: the access token is in that URL (opening it trades it for a "
              "cookie); share it only with people who may use this server", file=sys.stderr)
    if server.config.tls is None and not is_loopback(server.config.host):
        print("vicocam: browsers on other machines get no camera over plain HTTP; add "
              "--tls self-signed (see the README)", file=sys.stderr)
