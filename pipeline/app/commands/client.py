"""``vicocam client``: send a local camera to a remote ``vicocam serve``, get the avatar back.

Source and sink are endpoints of `stages.endpoints` (``camera:N``, a video
file or ``pattern`` in; ``virtualcam[:DEVICE]`` or a video file out).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pipeline.app.endpoint_options import add_sink_option
from pipeline.app.options import add_deprecated, positive_float, size
from pipeline.errors import UserError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "client", help="send this camera to a remote 'vicocam serve', get the avatar back",
        description=("Send a local camera to a 'vicocam serve' (for example on a GPU machine) "
                     "over WebRTC and write the returned avatar into the local virtual "
                     "camera or a video file."))
    parser.add_argument("--server", required=True,
                        help="the server's URL, e.g. https://gpu-box:8080/?token=...")
    parser.add_argument("--token", default=None, help="access token (if not in the URL)")
    parser.add_argument("--ca", type=Path, default=None, metavar="FILE",
                        help="trust an https server whose certificate this PEM file (the "
                             "certificate or its authority) vouches for (default: the "
                             "system's trusted authorities)")
    parser.add_argument("--fingerprint", default=None, metavar="SHA256",
                        help="accept an https server only if its certificate has this SHA-256 "
                             "fingerprint, as 'vicocam serve --tls self-signed' prints it")
    parser.add_argument("--source", default="camera:0",
                        help="what to send: camera:N (default camera:0), pattern[:WxH@FPS] or "
                             "a video file (looped)")
    add_deprecated(parser, "--camera", "--source camera:N", "source",
                   convert=lambda device: f"camera:{device}")
    add_sink_option(parser, "virtualcam")
    add_deprecated(parser, "--virtualcam-device", "--sink virtualcam:DEVICE", "sink",
                   convert=lambda device: f"virtualcam:{device}")
    parser.add_argument("--virtualcam-backend", default=None,
                        help="v4l2loopback, obs or unitycapture (default: the platform's)")
    parser.add_argument("--size", default=(640, 480), type=size, metavar="WxH",
                        help="camera size to ask for, and the virtual camera's size (640x480)")
    parser.add_argument("--fps", type=positive_float, default=30.0, help="frame rate (30)")
    parser.add_argument("--seconds", type=positive_float, default=None,
                        help="stop after this long")
    parser.add_argument("--network", default=None, metavar="CONDITIONS", type=_link,
                        help="try a bad network: impair this call's packets both ways, e.g. "
                             "loss=2%%,delay=40ms,jitter=10ms,rate=1mbit,blackout=10s+3s "
                             "(any subset; seeded, so runs repeat)")
    parser.add_argument("--no-reconnect", dest="reconnect", action="store_false",
                        help="end the run when the session is lost, instead of calling the "
                             "server again (by default a lost session, e.g. a server or "
                             "cluster replica that died, is called again with backoff)")
    parser.add_argument("--ice-host", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle_client)


def _link(text: str) -> object:
    from stages.webrtc.impairment import LinkSpecError, parse_link

    try:
        return parse_link(text)
    except LinkSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def handle_client(args: argparse.Namespace) -> int:
    from pipeline.heap import frozen_heap
    from pipeline.memory import tune_allocator
    from stages.endpoints import open_sink, open_source
    from stages.io import SinkOptions, SourceOptions
    from stages.webrtc.client import ClientConfig, ClientError, run_client

    tune_allocator()  # a call lasts a meeting: see pipeline.memory
    config = ClientConfig(server=args.server, token=args.token, duration_s=args.seconds,
                          ice_host=args.ice_host, ca=args.ca, fingerprint=args.fingerprint,
                          network=args.network, reconnect=args.reconnect)
    try:
        source = open_source(args.source, SourceOptions(fps=args.fps, size=args.size, loop=True))
        sink = open_sink(args.sink, SinkOptions(fps=args.fps, size=args.size,
                                                virtualcam_backend=args.virtualcam_backend))
        with frozen_heap():  # no full collection walks the imported modules again
            report = asyncio.run(run_client(config, source, sink, on_notice=_server_notice))
    except (ValueError, ClientError) as exc:
        raise UserError(str(exc)) from exc
    print(f"vicocam: sent {report.frames_sent} frames, received {report.frames_received} "
          f"(session {report.session})")
    if len(report.sessions) > 1:
        print(f"vicocam: {len(report.sessions)} sessions: the server was lost and called "
              f"again {len(report.sessions) - 1} times")
    if report.network is not None:
        print(f"vicocam: network {_link_summary(report.network)}")
    if report.gave_up is not None:
        raise UserError(f"the server was lost: {report.gave_up}")
    if report.frames_received == 0:
        raise UserError("no video came back from the server; check its log")
    return 0


def _link_summary(network: dict[str, Any]) -> str:
    """One line of what the impaired link did in each direction."""
    def side(stats: dict[str, int]) -> str:
        lost = stats["lost_random"] + stats["lost_blackout"] + stats["lost_queue"]
        return f"{stats['packets']} packets, {lost} lost, {stats['reordered']} reordered"

    return (f"{network['conditions']}: sent {side(network['outgoing'])}; "
            f"received {side(network['incoming'])}")


def _server_notice(notice: str) -> None:
    """Print what the server's page would show (e.g. its model does not fit real faces)."""
    print(f"vicocam: warning from the server: {notice}", file=sys.stderr)
