"""``vicocam client``: send a local camera to a ``vicocam serve`` and take the avatar back.

For a GPU somewhere else: the camera is captured here, sent over WebRTC
(aiortc) to the server, which runs the model, and the returned avatar is
written into the local virtual camera (or a file)::

    local source --pipeline--> TrackSink --> OutgoingVideoTrack ==RTP==> server
    server ==RTP==> TrackSource --pipeline--> sink (virtual camera / file)

Two live pipelines share one peer connection; each drops rather than queues,
so neither direction can build up latency. The run ends when the local
source ends or ``duration_s`` passes (then returned frames still on the way
get ``drain_s`` to arrive), when the connection fails or the server hangs up,
or on Ctrl-C; the session is closed on the server in every case. A source,
sink or connection that fails raises `ClientError` saying which. A notice the
server publishes in its config (e.g. that its model does not fit real faces)
is handed to ``on_notice`` once connected, since no page shows it here.

An ``https`` server's certificate is checked against the system's trusted
authorities, or against ``ca`` (a PEM file), or, for a self-signed server,
only its SHA-256 fingerprint is compared with the one ``vicocam serve``
printed (``fingerprint``); a certificate that fails its check ends the run
with a `ClientError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from pipeline.runtime import (
    Pipeline,
    RunMode,
    RunReport,
    RuntimeConfig,
    SourceFailedError,
    StageFailedError,
)
from pipeline.stage import Source, Stage
from stages.webrtc.aiortc_patches import PatchConfig, install_patches
from stages.webrtc.aiortc_patches.jitter import assembler_counts
from stages.webrtc.ice import filter_candidates, ice_host_addresses
from stages.webrtc.impairment import ImpairedLink, LinkConditions, impair_connection
from stages.webrtc.tls import colon_hex, parse_fingerprint
from stages.webrtc.tracks import OutgoingVideoTrack, TrackSink, TrackSource, pump_track

log = logging.getLogger(__name__)


class ClientError(RuntimeError):
    """The server refused the connection or could not be reached; the message says why."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Settings of `run_client`.

    Attributes:
        server: the server's base URL (``http://host:8080``); a ``?token=``
            in it is used as the access token.
        token: the access token (overrides one in the URL).
        duration_s: stop after this long (``None`` = until the source ends).
        connect_timeout_s: how long to wait for the first returned frame.
        drain_s: after the local source ends, how long returned frames may
            still arrive.
        ice_host: use only this address for ICE on both sides (loopback tests).
        ca: trust an ``https`` server whose certificate this PEM file (the
            certificate itself or its authority) vouches for; ``None`` = the
            system's trusted authorities.
        fingerprint: accept an ``https`` server only if its certificate's
            SHA-256 is this (hex, colons allowed), whoever signed it.
        network: run the call over a bad link (loss, delay, a bandwidth cap,
            blackouts; `stages.webrtc.impairment`), to try how the avatar
            holds up; ``None`` = the network as it is.
    """

    server: str
    token: str | None = None
    duration_s: float | None = None
    connect_timeout_s: float = 20.0
    drain_s: float = 1.0
    ice_host: str | None = None
    ca: Path | None = None
    fingerprint: str | None = None
    network: LinkConditions | None = None


@dataclass
class ClientReport:
    """What a client run did: the sending and receiving pipelines' reports.

    ``network``: what the impaired link did (`ImpairedLink.report`), when
    the run had one; ``reassembly``: what the returned video's frame
    assembler did (given-up frames, picture-loss requests; `assembler_counts`).
    """

    session: str
    sent: RunReport
    received: RunReport
    network: dict[str, Any] | None = None
    reassembly: dict[str, int] = field(default_factory=dict)

    @property
    def frames_sent(self) -> int:
        return self.sent.metrics.frames_out

    @property
    def frames_received(self) -> int:
        return self.received.metrics.frames_out


def split_server_url(url: str, token: str | None) -> tuple[str, str | None]:
    """``(base URL without query, token)`` from a server URL possibly carrying ``?token=``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"cannot use server URL {url!r}; give http://HOST:PORT "
                          "(https:// for a server started with --tls)")
    from_url = parse_qs(parts.query).get("token", [None])[0]
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), token or from_url


async def run_client(config: ClientConfig, source: Source, sink: Stage, *,
                     on_notice: Callable[[str], None] | None = None,
                     on_link: Callable[[ImpairedLink], None] | None = None) -> ClientReport:
    """Connect, run both directions until the end (see the module docstring), disconnect.

    ``on_notice`` gets the server's notice, when it has one, once connected;
    ``on_link`` the impaired link (``config.network``) once it is in place,
    to black it out at will.
    """
    base, token = split_server_url(config.server, config.token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    scope = (ice_host_addresses([config.ice_host]) if config.ice_host
             else contextlib.nullcontext())
    connector = aiohttp.TCPConnector(ssl=tls_check(config, base))
    with scope:
        async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
            return await _Call(config, base, http, on_notice, on_link).run(source, sink)


SslCheck = ssl.SSLContext | aiohttp.Fingerprint | bool


def tls_check(config: ClientConfig, base: str) -> SslCheck:
    """How the client checks the certificate of the server at ``base``; `ClientError` if misused.

    ``True`` = the system's trusted authorities (aiohttp's default).
    """
    if config.ca is None and config.fingerprint is None:
        return True
    if not base.startswith("https://"):
        raise ClientError("--ca and --fingerprint check a certificate: give an https:// "
                          "server URL ('vicocam serve --tls ...')")
    if config.ca is not None and config.fingerprint is not None:
        raise ClientError("give --ca or --fingerprint, not both")
    if config.fingerprint is not None:
        try:
            return aiohttp.Fingerprint(parse_fingerprint(config.fingerprint))
        except ValueError as exc:
            raise ClientError(f"--fingerprint: {exc}") from None
    return _ca_context(config.ca)


def _ca_context(ca: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"--ca {ca}: cannot use it as trusted certificates ({exc})") from None


class _Call:
    """One connection to the server; `run` owns its peer connection and pipelines."""

    def __init__(self, config: ClientConfig, base: str, http: aiohttp.ClientSession,
                 on_notice: Callable[[str], None] | None = None,
                 on_link: Callable[[ImpairedLink], None] | None = None) -> None:
        self.config = config
        self.on_notice = on_notice
        self.on_link = on_link
        self.link: ImpairedLink | None = None
        self.base = base
        self.http = http
        self.session = ""
        self.outgoing = OutgoingVideoTrack()
        self.incoming = TrackSource(name="webrtc_return", open_timeout_s=config.connect_timeout_s)
        self.ended = asyncio.Event()
        self._pumps: list[asyncio.Task[None]] = []

    async def run(self, source: Source, sink: Stage) -> ClientReport:
        server = await self._request("GET", "/api/config")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=_ice_servers(server)))
        send = Pipeline(source, [TrackSink(self.outgoing)], self._runtime(self.config.duration_s))
        receive = Pipeline(self.incoming, [sink], self._runtime(None))
        try:
            await self._connect(pc)
            self._tell_notice(server)
            sent, received = await self._stream(send, receive)
            network = self.link.report() if self.link is not None else None
            return ClientReport(self.session, sent, received, network, assembler_counts(pc))
        finally:
            send.request_stop()
            receive.request_stop()
            self.incoming.close()
            for task in self._pumps:
                task.cancel()
            await pc.close()
            await self._hang_up()

    @staticmethod
    def _runtime(duration_s: float | None) -> RuntimeConfig:
        return RuntimeConfig(mode=RunMode.LIVE, duration_s=duration_s)

    def _tell_notice(self, server: dict[str, Any]) -> None:
        notice = server.get("notice")
        if self.on_notice is not None and isinstance(notice, str) and notice:
            self.on_notice(notice)

    async def _connect(self, pc: RTCPeerConnection) -> None:
        pc.addTrack(self.outgoing)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", lambda: self._on_state(pc.connectionState))
        install_patches(pc, PatchConfig())  # the frame assemblers only: nothing to answer
        await pc.setLocalDescription(await pc.createOffer())
        if self.config.network is not None:
            self.link = impair_connection(pc, self.config.network)
            if self.on_link is not None:
                self.on_link(self.link)
        reply = await self._request("POST", "/api/offer",
                                    json={"sdp": pc.localDescription.sdp, "type": "offer"})
        self.session = str(reply["session"])
        answer = str(reply["sdp"])
        if self.config.ice_host:
            answer = filter_candidates(answer, {self.config.ice_host})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        log.info("connected to %s (session %s)", self.base, self.session)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            pump = pump_track(track, self.incoming.push, self.incoming.end)
            self._pumps.append(asyncio.create_task(pump, name="client:return-video"))

    def _on_state(self, state: str) -> None:
        log.info("connection %s", state)
        if state in ("failed", "closed"):
            self.ended.set()
            self.incoming.close()

    async def _stream(self, send: Pipeline, receive: Pipeline) -> tuple[RunReport, RunReport]:
        send_task = asyncio.create_task(send.run(), name="client:send")
        receive_task = asyncio.create_task(receive.run(), name="client:receive")
        ended = asyncio.create_task(self.ended.wait(), name="client:ended")
        try:
            await asyncio.wait({send_task, receive_task, ended},
                               return_when=asyncio.FIRST_COMPLETED)
            if send_task.done() and not receive_task.done():
                await asyncio.wait({receive_task}, timeout=self.config.drain_s)
        finally:
            ended.cancel()
            send.request_stop()
            receive.request_stop()
            self.incoming.close()
        sent, received = await asyncio.gather(send_task, receive_task, return_exceptions=True)
        return _result(sent, "sending"), _result(received, "receiving")

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = self.base + path
        try:
            async with self.http.request(method, url, **kwargs) as response:
                body = await response.json(content_type=None)
        except aiohttp.ServerFingerprintMismatch as exc:
            raise ClientError(fingerprint_mismatch(self.base, exc)) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ClientError(f"the certificate of {self.base} is not trusted "
                              f"({exc.certificate_error}); {TRUST_HINT}") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ClientError(f"cannot reach the server at {self.base}: {exc}") from exc
        if response.status >= 400:
            reason = body.get("error") if isinstance(body, dict) else None
            raise ClientError(f"the server refused ({response.status}): {reason or body}")
        if not isinstance(body, dict):
            raise ClientError(f"unexpected reply from {url}: {body!r}")
        return body

    async def _hang_up(self) -> None:
        if not self.session:
            return
        with contextlib.suppress(ClientError):
            await self._request("DELETE", f"/api/sessions/{self.session}")


TRUST_HINT = ("for a self-signed server give --fingerprint with the SHA-256 'vicocam serve' "
              "printed, or --ca FILE with its certificate")


def fingerprint_mismatch(base: str, exc: aiohttp.ServerFingerprintMismatch) -> str:
    """What to tell a user whose pinned fingerprint is not the server's."""
    return (f"the certificate of {base} is not the pinned one: its SHA-256 is "
            f"{colon_hex(exc.got)}, --fingerprint says {colon_hex(exc.expected)}. Another "
            "server answers at that address, or the server made a new certificate (it "
            "prints its fingerprint at start); connect only once you know which")


def _ice_servers(server: dict[str, Any]) -> list[RTCIceServer]:
    """The STUN/TURN servers the server's config names."""
    return [RTCIceServer(urls=s["urls"]) for s in server.get("iceServers", [])]


def _result(outcome: RunReport | BaseException, what: str) -> RunReport:
    if isinstance(outcome, SourceFailedError | StageFailedError):
        raise ClientError(f"{what} failed: {outcome}") from outcome
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
