"""``vicocam client``: send a local camera to a ``vicocam serve`` and take the avatar back.

For a GPU somewhere else: the camera is captured here, sent over WebRTC
(aiortc) to the server, which runs the model, and the returned avatar is
written into the local virtual camera (or a file)::

    local source --pipeline--> CallSink --> OutgoingVideoTrack ==RTP==> server
    server ==RTP==> TrackSource --pipeline--> sink (virtual camera / file)

Two live pipelines share one peer connection; each drops rather than queues,
so neither direction can build up latency. The run ends when the local
source ends or ``duration_s`` passes (then returned frames still on the way
get ``drain_s`` to arrive), or on Ctrl-C; the session is closed on the
server in every case. A source, sink or connection that fails raises
`ClientError` saying which. A notice the server publishes in its config
(e.g. that its model does not fit real faces) is handed to ``on_notice``
once connected, since no page shows it here.

**Lost sessions.** The client opens the session's ``control`` data channel,
on which the server pushes stats every second. A call whose connection
fails or closes, whose server closes the channel, or from which nothing (no
message, no frame) came for ``heartbeat_timeout_s`` (a server or cluster
replica that died sends nothing) is lost; with ``reconnect`` the client
calls the same server again at once, then with backoff, honouring a 503's
or 429's ``Retry-After`` (`stages.webrtc.reconnect`), for up to
``reconnect_for_s``; each new call reads the server's config again, so the
TURN credentials it uses are fresh (a server minting them from a shared
secret makes them expire). The local pipelines run on across calls (frames sent
while no call is up are dropped). A refusal that retrying cannot change (a
wrong token, a bad request) ends the run at once. `ClientReport.calls` says
when each call started, got video and ended, and why.

An ``https`` server's certificate is checked against the system's trusted
authorities, or against ``ca`` (a PEM file), or, for a self-signed server,
only its SHA-256 fingerprint is compared with the one ``vicocam serve``
printed (``fingerprint``); a certificate that fails its check ends the run
with a `ClientError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
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
from stages.webrtc.control_channel import CONTROL_LABEL
from stages.webrtc.ice import filter_candidates, ice_host_addresses
from stages.webrtc.ice_servers import IceServer, rtc_ice_servers
from stages.webrtc.impairment import ImpairedLink, LinkConditions, impair_connection
from stages.webrtc.reconnect import (
    CallSink,
    Liveness,
    PtsBridge,
    backoff_s,
    retry_after_s,
)
from stages.webrtc.tls import colon_hex, parse_fingerprint
from stages.webrtc.tracks import OutgoingVideoTrack, TrackSink, TrackSource, pump_track

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.1
"""How often a call's liveness is checked."""
REQUEST_TIMEOUT_S = 30.0
"""Longest wait for an answer to a request (a gateway may start a host for an offer)."""
HANG_UP_TIMEOUT_S = 2.0
"""Longest wait for a lost call's hang-up: a dead server must not hold up the next call."""


class ClientError(RuntimeError):
    """The server refused the connection or could not be reached; the message says why."""


class ServerRefusedError(ClientError):
    """The server answered with an error ``status``; ``retry_after_s`` is its Retry-After."""

    def __init__(self, message: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Full (503), too fast (429) or failing for now (5xx); not a 4xx retrying cannot fix."""
        return self.status in (429, 503) or self.status >= 500


class ServerUnreachableError(ClientError):
    """No answer from the server's address (down, restarting, or a wrong URL)."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Settings of `run_client`.

    Attributes:
        server: the server's base URL (``http://host:8080``); a ``?token=``
            in it is used as the access token.
        token: the access token (overrides one in the URL).
        duration_s: stop after this long (``None`` = until the source ends).
        connect_timeout_s: how long a call may wait for its first returned
            frame before it counts as lost.
        drain_s: after the local source ends, how long returned frames may
            still arrive.
        ice_host: use only this address for ICE on both sides (loopback tests).
        ca: trust an ``https`` server whose certificate this PEM file (the
            certificate itself or its authority) vouches for; ``None`` = the
            system's trusted authorities.
        fingerprint: accept an ``https`` server only if its certificate's
            SHA-256 is this (hex, colons allowed), whoever signed it.
        network: run the calls over a bad link (loss, delay, a bandwidth cap,
            blackouts; `stages.webrtc.impairment`), to try how the avatar
            holds up; ``None`` = the network as it is. Blackouts count from
            the first call and fall at the same times whichever call is up.
        reconnect: call again when a session is lost (see the module
            docstring); ``False`` ends the run with the first call.
        heartbeat_timeout_s: a call from which nothing came for this long
            is lost (the server pushes stats every second).
        reconnect_for_s: give up when no call could be made for this long
            after a loss (or, at the start, while the server is full).
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
    reconnect: bool = True
    heartbeat_timeout_s: float = 3.0
    reconnect_for_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.heartbeat_timeout_s > 0 and self.connect_timeout_s > 0):
            raise ValueError("the heartbeat and connect timeouts must be > 0 s")
        if not self.reconnect_for_s >= 0:
            raise ValueError(f"reconnect_for_s must be >= 0 s, got {self.reconnect_for_s}")


@dataclass
class CallRecord:
    """One try at a session, in the order tried; times are `time.monotonic` seconds.

    ``session`` is the server's session id (``None``: the offer was refused
    or the server not reached; ``reason`` says how). ``first_frame`` and
    ``last_frame`` are when the call's first and last returned frames came
    (``None``: none came); ``ended`` is when the call was closed, ``reason``
    why (e.g. ``nothing from the server for 3 s``, ``connection failed``,
    ``the run ended``). The time from a loss to video back is
    ``calls[k].first_frame - calls[j].last_frame`` for the next call ``k``
    with video after the lost call ``j``. ``network`` and ``reassembly``
    are the call's own link and frame-assembler counts.
    """

    started: float
    session: str | None = None
    first_frame: float | None = None
    last_frame: float | None = None
    ended: float | None = None
    reason: str | None = None
    network: dict[str, Any] | None = None
    reassembly: dict[str, int] = field(default_factory=dict)


@dataclass
class ClientReport:
    """What a client run did: the sending and receiving pipelines' reports, and its calls.

    ``session``: the last session's id. ``network``: what the impaired link
    did over all calls (`ImpairedLink.report`, summed), when the run had one;
    ``reassembly``: what the returned video's frame assemblers did (given-up
    frames, picture-loss requests; `assembler_counts`, summed). ``calls``:
    every try at a session (`CallRecord`). ``ended``: why the run ended;
    ``gave_up``: set (why) when it ended because the server was lost and
    could not be reached again, ``None`` when it ended as asked.
    """

    session: str
    sent: RunReport
    received: RunReport
    network: dict[str, Any] | None = None
    reassembly: dict[str, int] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    ended: str = ""
    gave_up: str | None = None

    @property
    def frames_sent(self) -> int:
        return self.sent.metrics.frames_out

    @property
    def frames_received(self) -> int:
        return self.received.metrics.frames_out

    @property
    def sessions(self) -> list[str]:
        """The ids of the sessions the run held, in order."""
        return [c.session for c in self.calls if c.session is not None]


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
    ``on_link`` each call's impaired link (``config.network``) once it is in
    place, to black it out at will.
    """
    base, token = split_server_url(config.server, config.token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    scope = (ice_host_addresses([config.ice_host]) if config.ice_host
             else contextlib.nullcontext())
    connector = aiohttp.TCPConnector(ssl=tls_check(config, base))
    with scope:
        async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
            run = _Run(config, _Api(base, http), on_notice, on_link)
            return await run.run(source, sink)


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


class _Api:
    """The server's HTTP API: JSON replies, refusals and unreachability as `ClientError` s."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http

    async def request(self, method: str, path: str, timeout_s: float = REQUEST_TIMEOUT_S,
                      **kwargs: Any) -> dict[str, Any]:
        url = self.base + path
        try:
            async with self.http.request(method, url, **kwargs,
                                         timeout=aiohttp.ClientTimeout(total=timeout_s)
                                         ) as response:
                body = await response.json(content_type=None)
        except aiohttp.ServerFingerprintMismatch as exc:
            raise ClientError(fingerprint_mismatch(self.base, exc)) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ClientError(f"the certificate of {self.base} is not trusted "
                              f"({exc.certificate_error}); {TRUST_HINT}") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ServerUnreachableError(f"cannot reach the server at {self.base}: {exc}"
                                         ) from exc
        except TimeoutError:
            raise ServerUnreachableError(f"no answer from the server at {self.base} within "
                                         f"{timeout_s:g} s") from None
        if response.status >= 400:
            reason = body.get("error") if isinstance(body, dict) else None
            raise ServerRefusedError(f"the server refused ({response.status}): {reason or body}",
                                     response.status,
                                     retry_after_s(response.headers.get("Retry-After")))
        if not isinstance(body, dict):
            raise ClientError(f"unexpected reply from {url}: {body!r}")
        return body


class _LinkPlan:
    """The run's bad network, put on every call's sockets: blackouts keep their times."""

    def __init__(self, conditions: LinkConditions,
                 on_link: Callable[[ImpairedLink], None] | None) -> None:
        self.conditions = conditions
        self.on_link = on_link
        self.reports: list[dict[str, Any]] = []
        self._start: float | None = None

    def impair(self, pc: RTCPeerConnection) -> ImpairedLink:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        link = impair_connection(pc, self._from(now - self._start))
        if self.on_link is not None:
            self.on_link(link)
        return link

    def _from(self, elapsed: float) -> LinkConditions:
        """The conditions as seen ``elapsed`` seconds after the first call's link."""
        left = tuple((max(0.0, start - elapsed), start + length - max(start, elapsed))
                     for start, length in self.conditions.blackouts
                     if start + length > elapsed)
        return dataclasses.replace(self.conditions, blackouts=left)

    def report(self) -> dict[str, Any] | None:
        """What the calls' links did, summed (``None`` before any call)."""
        if not self.reports:
            return None
        total: dict[str, Any] = {"conditions": self.conditions.describe(), "sockets": 0,
                                 "outgoing": {}, "incoming": {}}
        for report in self.reports:
            total["sockets"] += report["sockets"]
            for side in ("outgoing", "incoming"):
                for key, value in report[side].items():
                    total[side][key] = total[side].get(key, 0) + value
        return total


class _Call:
    """One connection to the server: its peer connection, control channel and session.

    `connect` makes the offer; ``ended`` resolves with the reason the call is
    lost; `close` frees it and hangs up.
    """

    def __init__(self, config: ClientConfig, api: _Api, server: dict[str, Any],
                 incoming: TrackSource, bridge: PtsBridge, links: _LinkPlan | None) -> None:
        self.config = config
        self.api = api
        self.record = CallRecord(started=time.monotonic())
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=_ice_servers(server)))
        self.outgoing = OutgoingVideoTrack()
        self.liveness = Liveness(config.connect_timeout_s, config.heartbeat_timeout_s)
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._incoming = incoming
        self._bridge = bridge
        self._links = links
        self._link: ImpairedLink | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def connect(self) -> None:
        """Offer, take the answer; `ClientError` when refused or unreachable."""
        pc = self.pc
        pc.addTrack(self.outgoing)
        self._open_channel()
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", lambda: self._on_state(pc.connectionState))
        install_patches(pc, PatchConfig())  # the frame assemblers only: nothing to answer
        await pc.setLocalDescription(await pc.createOffer())
        if self._links is not None:
            self._link = self._links.impair(pc)
        reply = await self.api.request("POST", "/api/offer",
                                       json={"sdp": pc.localDescription.sdp, "type": "offer"})
        self.record.session = str(reply["session"])
        answer = str(reply["sdp"])
        if self.config.ice_host:
            answer = filter_candidates(answer, {self.config.ice_host})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.liveness.start()
        self._tasks.append(asyncio.create_task(self._watch(), name="client:liveness"))
        log.info("connected to %s (session %s)", self.api.base, self.record.session)

    def _open_channel(self) -> None:
        # The server pushes stats on it every second: the call's heartbeat.
        channel = self.pc.createDataChannel(CONTROL_LABEL)
        channel.on("message", lambda message: self.liveness.beat())
        channel.on("close", lambda: self.end("the server closed the control channel"))

    def end(self, reason: str) -> None:
        """Mark the call lost (the first reason counts)."""
        if not self.ended.done():
            self.ended.set_result(reason)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)  # a clock, not an event: silence is the news
            reason = self.liveness.lost()
            if reason is not None:
                self.end(reason)
                return

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            pump = pump_track(track, self._on_frame,
                              lambda: self.end("the server's video ended"))
            self._tasks.append(asyncio.create_task(pump, name="client:return-video"))

    def _on_frame(self, frame: Any) -> None:
        now = time.monotonic()
        self.liveness.frame()
        if self.record.first_frame is None:
            self.record.first_frame = now
            self._bridge.next_call()
        self.record.last_frame = now
        self._incoming.push(self._bridge.rebase(frame))

    def _on_state(self, state: str) -> None:
        log.info("connection %s", state)
        if state in ("failed", "closed"):
            self.end(f"connection {state}")

    async def close(self, reason: str) -> None:
        """Free the connection and hang up; records when and why; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.end(reason)
        self.record.ended, self.record.reason = time.monotonic(), self.ended.result()
        for task in self._tasks:
            task.cancel()
        self.record.reassembly = assembler_counts(self.pc)
        if self._link is not None and self._links is not None:
            self.record.network = self._link.report()
            self._links.reports.append(self.record.network)
        await self.pc.close()
        await self._hang_up()

    async def _hang_up(self) -> None:
        if not self.record.session:
            return
        with contextlib.suppress(ClientError):
            await self.api.request("DELETE", f"/api/sessions/{self.record.session}",
                                   timeout_s=HANG_UP_TIMEOUT_S)


class _Run:
    """A client run: the two local pipelines, and calls one after another while it lasts."""

    def __init__(self, config: ClientConfig, api: _Api,
                 on_notice: Callable[[str], None] | None = None,
                 on_link: Callable[[ImpairedLink], None] | None = None) -> None:
        self.config = config
        self.api = api
        self.on_notice = on_notice
        self.calls: list[CallRecord] = []
        self.out = CallSink()
        # Waits for the first frame of any call; closing it (the run's end) stops the wait.
        opening = config.connect_timeout_s + (config.reconnect_for_s if config.reconnect else 0)
        self.incoming = TrackSource(name="webrtc_return", open_timeout_s=opening)
        self.stopping = asyncio.Event()
        self._bridge = PtsBridge()
        self._links = _LinkPlan(config.network, on_link) if config.network else None
        self._server: dict[str, Any] = {}
        self._failures = 0  # failed tries in a row (refusals, calls that got no video)
        self._stopped_by = "stopped"  # what ended the run when the calls did not

    async def run(self, source: Source, sink: Stage) -> ClientReport:
        self._server = await self.api.request("GET", "/api/config")
        call = await self._connect(first=True)
        assert call is not None  # only a stopped run gets none
        self._tell_notice()
        send = Pipeline(source, [self.out], self._runtime(self.config.duration_s))
        receive = Pipeline(self.incoming, [sink], self._runtime(None))
        calls = asyncio.create_task(self._keep_calling(call), name="client:calls")
        try:
            reports = await self._stream(send, receive, calls)
        finally:
            ended, gave_up = await self._end_calls(calls)
        if ended is not None and not any(c.first_frame for c in self.calls):
            raise ClientError(f"no video came back: {ended}")  # the reason is the news
        return self._report(reports, ended or self._stopped_by, gave_up)

    @staticmethod
    def _runtime(duration_s: float | None) -> RuntimeConfig:
        return RuntimeConfig(mode=RunMode.LIVE, duration_s=duration_s)

    def _tell_notice(self) -> None:
        notice = self._server.get("notice")
        if self.on_notice is not None and isinstance(notice, str) and notice:
            self.on_notice(notice)

    # ---- the pipelines ---------------------------------------------------------------
    async def _stream(self, send: Pipeline, receive: Pipeline,
                      calls: asyncio.Task[str | None]) -> tuple[RunReport | BaseException, ...]:
        send_task = asyncio.create_task(send.run(), name="client:send")
        receive_task = asyncio.create_task(receive.run(), name="client:receive")
        try:
            await asyncio.wait({send_task, receive_task, calls},
                               return_when=asyncio.FIRST_COMPLETED)
            self._stopped_by = _stopped_by(send_task)
            if send_task.done() and not receive_task.done():
                await asyncio.wait({receive_task}, timeout=self.config.drain_s)
        finally:
            self.stopping.set()
            send.request_stop()
            receive.request_stop()
            self.incoming.close()
        return tuple(await asyncio.gather(send_task, receive_task, return_exceptions=True))

    def _report(self, reports: tuple[RunReport | BaseException, ...], ended: str,
                gave_up: str | None) -> ClientReport:
        sent, received = _result(reports[0], "sending"), _result(reports[1], "receiving")
        sessions = [c.session for c in self.calls if c.session]
        reassembly: dict[str, int] = {}
        for call in self.calls:
            for key, value in call.reassembly.items():
                reassembly[key] = reassembly.get(key, 0) + value
        network = self._links.report() if self._links is not None else None
        return ClientReport(sessions[-1] if sessions else "", sent, received, network,
                            reassembly, self.calls, ended, gave_up)

    # ---- the calls -------------------------------------------------------------------
    async def _keep_calling(self, call: _Call) -> str | None:
        """Hold a call while the run lasts, calling again when one is lost.

        Returns why the calls ended the run (``None``: the run stopped them).
        """
        while True:
            reason = await self._hold(call)
            if self.stopping.is_set():
                return None
            if not self.config.reconnect:
                return f"the call ended: {reason}"
            log.warning("session %s lost (%s); calling again", call.record.session, reason)
            self._failures = 0 if call.record.first_frame is not None else self._failures + 1
            next_call = await self._connect(first=False)
            if next_call is None:
                return None
            call = next_call

    async def _hold(self, call: _Call) -> str:
        """Wait until ``call`` is lost or the run stops, then close it; the reason."""
        self.out.current = TrackSink(call.outgoing)
        stop = asyncio.create_task(self.stopping.wait())
        try:
            waits: set[asyncio.Future[Any]] = {call.ended, stop}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            self.out.current = None
            await call.close("the run ended")
        return str(call.record.reason)

    async def _connect(self, first: bool) -> _Call | None:
        """A connected call, retrying as the config allows; ``None`` if the run stopped.

        Raises `ClientError` when the server refuses for good, or no call
        could be made within ``reconnect_for_s``.
        """
        deadline = time.monotonic() + self.config.reconnect_for_s
        delay = 0.0 if first else backoff_s(self._failures)
        while not await self._stopped_within(delay):
            try:
                return await self._open_call()
            except ClientError as exc:
                self._failures += 1
                delay = self._retry_delay(exc, first, deadline)
        return None

    def _retry_delay(self, exc: ClientError, first: bool, deadline: float) -> float:
        """How long to wait before trying again after ``exc``; raises it when not to."""
        if not self.config.reconnect:
            raise exc
        if isinstance(exc, ServerRefusedError) and exc.retryable:
            delay = max(exc.retry_after_s or 0.0, backoff_s(self._failures))
        elif isinstance(exc, ServerUnreachableError) and not first:
            delay = backoff_s(self._failures)  # a server restarting, a gateway moving
        else:
            raise exc
        if time.monotonic() + delay > deadline:
            raise ClientError(f"gave up calling the server after {self.config.reconnect_for_s:g}"
                              f" s; the last try: {exc}") from exc
        log.info("%s; trying again in %.2g s", exc, delay)
        return delay

    async def _open_call(self) -> _Call:
        if self.calls:  # a later call: fresh TURN credentials, the first ones may have expired
            self._server = await self.api.request("GET", "/api/config")
        call = _Call(self.config, self.api, self._server, self.incoming, self._bridge,
                     self._links)
        self.calls.append(call.record)
        try:
            await call.connect()
        except BaseException as exc:
            await call.close(f"not connected: {exc}")
            raise
        return call

    async def _stopped_within(self, delay: float) -> bool:
        """Wait ``delay`` seconds, or less if the run stops; whether it stopped."""
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
        return self.stopping.is_set()

    async def _end_calls(self, calls: asyncio.Task[str | None]) -> tuple[str | None, str | None]:
        """Stop calling (the current call hangs up).

        Returns ``(why the calls ended the run, why they gave up)``, ``None`` for each
        that does not apply.
        """
        self.stopping.set()
        try:
            return await calls, None
        except ClientError as exc:
            return str(exc), str(exc)


TRUST_HINT = ("for a self-signed server give --fingerprint with the SHA-256 'vicocam serve' "
              "printed, or --ca FILE with its certificate")


def fingerprint_mismatch(base: str, exc: aiohttp.ServerFingerprintMismatch) -> str:
    """What to tell a user whose pinned fingerprint is not the server's."""
    return (f"the certificate of {base} is not the pinned one: its SHA-256 is "
            f"{colon_hex(exc.got)}, --fingerprint says {colon_hex(exc.expected)}. Another "
            "server answers at that address, or the server made a new certificate (it "
            "prints its fingerprint at start); connect only once you know which")


def _stopped_by(send: asyncio.Task[RunReport]) -> str:
    """Why the run stopped when its calls did not stop it."""
    if not send.done() or send.cancelled():
        return "receiving ended" if not send.done() else "stopped"
    failed = send.exception()
    return f"sending failed: {failed}" if failed else f"sending ended ({send.result().reason})"


def _ice_servers(server: dict[str, Any]) -> list[RTCIceServer]:
    """The STUN/TURN servers the server's config names, with their TURN credentials.

    An entry this client cannot use (a malformed URL, TURN without
    credentials) is left out with a warning: the call may still connect
    without it, where aiortc would fail while gathering.
    """
    servers = []
    for entry in server.get("iceServers") or []:
        try:
            servers.append(IceServer.from_json(entry))
        except ValueError as exc:
            log.warning("ignoring an ICE server of the server's config: %s", exc)
    return rtc_ice_servers(servers)


def _result(outcome: RunReport | BaseException, what: str) -> RunReport:
    if isinstance(outcome, SourceFailedError | StageFailedError):
        raise ClientError(f"{what} failed: {outcome}") from outcome
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
