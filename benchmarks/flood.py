"""``vicocam bench flood``: a flood of offers from many addresses against live sessions.

Question answered: while offers arrive at ~1,000 a second from many loopback
source addresses (127.0.0.2, 127.0.0.3, ...: a per-address rate limit cannot
hold them back), do the sessions already live keep their frame rate, is every
flood request refused with a status (429/503, never 500), is a peer arriving
right after the flood served, and does the server's memory come back?

Setup: the server of ``vicocam serve`` in this process (`ServerThread`) with
its defaults (4 sessions, 2 pending, a 4 s connect timeout, the per-client
rates) and the identity stage: no model, so the live figures show what the
flood costs the transport and admission, not the model. Two child processes,
as two other machines would be:

- peers: ``live_peers`` aiortc peers sending a stamped synthetic camera
  (``width`` x ``height`` at ``fps``) that count the distinct stamps coming
  back; after the flood, the late peer (it honours ``Retry-After``).
- flood: ``rate_per_s`` requests a second for ``seconds``, each on its own
  connection bound to the next of ``addresses`` source addresses, cycling
  through `FLOOD_MIX`: ``copied``, a real offer whose peer is gone (it passes
  every check and never connects: the costliest kind), ``no_fingerprint``, the
  same without its DTLS fingerprint, and ``not_json``.

A round is a flood and the server settling again (only the live sessions
left); the late peer comes right after the first flood. ``floods`` rounds run
(2): the others, without the late peer, show what a flood alone leaves in
memory. Before them a control round without a flood, the late peer alone,
since a session that joins and leaves moves the memory by itself.

Figures (per round under ``rounds``; the worst or the total at the top):
    statuses, statuses_by_kind: answers counted by HTTP status; a request with
        no answer counts under its error's name.
    sent, skipped, achieved_rate_per_s, flood_s: requests sent, not sent
        because ``max_open`` connections were open, the rate reached, and how
        long sending took.
    retry_after_missing: 429/503 answers without ``Retry-After`` (should be 0).
    live_fps_before, live_fps (live_fps_min): per live peer, distinct returned
        frames per second over the warm-up's end and over each flood, and
        live_fps_by_second through each flood; live_max_gap_ms: the longest
        wait for a returned frame during a flood.
    loadavg_1m_before: the machine's load before the first flood (other
        programs on a shared machine show here).
    late_peer: whether it was served, its refusals by status before that,
        and ``first_frame_s``, from its first offer to its first returned frame.
    rss_mb_start, rss_mb_before, rss_mb_peak, rss_mb_after: the server
        process's resident memory after the warm-up, after the control round
        (the level before the floods), at most during a flood, and after each
        round (its sessions gone, the late peer hung up: the same live sessions
        as before); rss_mb_change_control: the control round's change;
        rss_mb_change_first: after the first flood round (the late peer
        included) less before it; rss_mb_change_after_first: after the last
        round less after the first (floods alone).
    slot_hold_s: how long one offer held a session slot: ``no_fingerprint``
        (0: refused before any session) and ``never_connecting`` (the connect
        timeout and the close), with the status each got.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

if TYPE_CHECKING:
    import aiohttp
    from av import VideoFrame

    from stages.webrtc.server import WebRTCServer

FLOOD_MIX = ("copied",) * 8 + ("no_fingerprint", "not_json")
"""The flood's bodies in turn: mostly offers that pass every check."""

LOOPBACK = "127.0.0.1"
BASELINE_S = 3.0


@dataclass(frozen=True, slots=True)
class FloodBenchConfig:
    """What `run_flood_bench` does.

    Attributes:
        seconds, rate_per_s: how long the flood lasts and how many requests a
            second it sends.
        addresses: source addresses the requests take in turn (127.0.0.2 up).
        live_peers: sessions live through the flood.
        width, height, fps: the peers' synthetic camera.
        warmup_s: live sessions' run before the first flood; its last
            `BASELINE_S` are the baseline (the peers' bitrate ramps up first).
        request_timeout_s: how long one flood request may take in all.
        max_open: flood connections open at once; more are not sent (counted).
        floods: rounds of flood and settling, the late peer after the first
            only; the others show the memory a flood alone leaves.
    """

    seconds: float = 10.0
    rate_per_s: float = 1000.0
    addresses: int = 1000
    live_peers: int = 2
    width: int = 320
    height: int = 240
    fps: int = 30
    warmup_s: float = 6.0
    request_timeout_s: float = 10.0
    max_open: int = 4000
    floods: int = 2

    @property
    def camera(self) -> tuple[int, int, int]:
        return self.width, self.height, self.fps


# ---- the flood ------------------------------------------------------------------------------
def source_addresses(count: int) -> list[str]:
    """``count`` loopback addresses from 127.0.0.2 up (no .0 or .255 last byte)."""
    found: list[str] = []
    n = 2
    while len(found) < count:
        if n % 256 not in (0, 255):
            found.append(f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}")
        n += 1
    return found


def never_connecting(sdp: str) -> str:
    """``sdp`` without its ICE candidates: a peer nobody can reach."""
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not line.startswith(("a=candidate:", "a=end-of-candidates")))


def flood_requests(host: str, port: int, offer_sdp: str) -> dict[str, bytes]:
    """The raw HTTP request of each kind of `FLOOD_MIX`."""
    copied = never_connecting(offer_sdp)
    bare = "".join(line for line in copied.splitlines(keepends=True)
                   if not line.startswith("a=fingerprint:"))
    bodies = {"copied": _offer_json(copied), "no_fingerprint": _offer_json(bare),
              "not_json": b"{not json"}
    return {kind: _post(host, port, "/api/offer", body) for kind, body in bodies.items()}


def _offer_json(sdp: str) -> bytes:
    return json.dumps({"sdp": sdp, "type": "offer"}).encode()


def _post(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


@dataclass
class FloodReport:
    """What a flood sent and got back; times are ``time.monotonic()`` (shared by processes)."""

    started: float = 0.0
    last_sent: float = 0.0
    answered: float = 0.0
    sent: int = 0
    skipped: int = 0
    retry_after_missing: int = 0
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)

    def record(self, kind: str, status: str, retry_after: bool) -> None:
        self.by_kind.setdefault(kind, Counter())[status] += 1
        if status in ("429", "503") and not retry_after:
            self.retry_after_missing += 1

    def statuses(self) -> Counter[str]:
        return sum(self.by_kind.values(), Counter())

    def figures(self) -> dict[str, Any]:
        span = max(self.last_sent - self.started, 1e-9)
        return {"sent": self.sent, "skipped": self.skipped,
                "achieved_rate_per_s": round(self.sent / span, 1),
                "flood_s": round(span, 2), "statuses": dict(sorted(self.statuses().items())),
                "statuses_by_kind": {k: dict(sorted(c.items())) for k, c in self.by_kind.items()},
                "retry_after_missing": self.retry_after_missing}


class _OneShot(asyncio.Protocol):
    """Sends one request and resolves ``answer`` with ``(status, has Retry-After)``."""

    def __init__(self, payload: bytes, answer: asyncio.Future[tuple[str, bool]]) -> None:
        self.payload = payload
        self.answer = answer
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.head += data
        if b"\r\n\r\n" in self.head and not self.answer.done():
            self.answer.set_result(_status(self.head))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_result(("closed", False))  # closed without an answer


def _status(head: bytes) -> tuple[str, bool]:
    first, _, rest = head.partition(b"\r\n")
    parts = first.split()
    status = parts[1].decode() if len(parts) > 1 else "garbled"
    headers = b"\r\n" + rest.split(b"\r\n\r\n")[0].lower()
    return status, b"\r\nretry-after:" in headers


async def _ask(host: str, port: int, source: str, payload: bytes,
               timeout_s: float) -> tuple[str, bool]:
    """One request on its own connection from ``source``: its status, or an error's name."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[tuple[str, bool]] = loop.create_future()
    transport = None
    try:
        async with asyncio.timeout(timeout_s):
            transport, _ = await loop.create_connection(lambda: _OneShot(payload, answer),
                                                        host, port, local_addr=(source, 0))
            return await answer
    except (OSError, TimeoutError) as exc:
        return type(exc).__name__, False
    finally:
        if transport is not None:
            transport.close()


async def flood(host: str, port: int, offer_sdp: str, config: FloodBenchConfig) -> FloodReport:
    """Send ``config.rate_per_s`` offer requests a second for ``config.seconds``; the answers."""
    requests = flood_requests(host, port, offer_sdp)
    sources = source_addresses(config.addresses)
    report = FloodReport(started=time.monotonic())
    total = round(config.rate_per_s * config.seconds)
    open_: set[asyncio.Task[None]] = set()
    while report.sent + report.skipped < total:
        due = min(total, int((time.monotonic() - report.started) * config.rate_per_s) + 1)
        for i in range(report.sent + report.skipped, due):
            if len(open_) >= config.max_open:
                report.skipped += 1
                continue
            kind = FLOOD_MIX[i % len(FLOOD_MIX)]
            ask = _ask(host, port, sources[i % len(sources)], requests[kind],
                       config.request_timeout_s)
            task = asyncio.create_task(_recorded(report, kind, ask))
            open_.add(task)
            task.add_done_callback(open_.discard)
            report.sent += 1
        report.last_sent = time.monotonic()
        await asyncio.sleep(0.001)
    await asyncio.gather(*open_)
    report.answered = time.monotonic()
    return report


async def _recorded(report: FloodReport, kind: str, ask: Any) -> None:
    status, retry_after = await ask
    report.record(kind, status, retry_after)


# ---- peers ----------------------------------------------------------------------------------
def _camera_track(width: int, height: int, fps: int) -> Any:
    """A synthetic camera: a grey picture with the frame index stamped, paced at ``fps``."""
    from aiortc.mediastreams import MediaStreamTrack
    from av import VideoFrame

    from stages.stamp import stamp

    class PacedCamera(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.start: float | None = None

        async def recv(self) -> VideoFrame:
            self.start = self.start or time.monotonic()
            await asyncio.sleep(max(0.0, self.start + self.index / fps - time.monotonic()))
            image = np.full((height, width, 3), 90, np.uint8)
            stamp(image, self.index)
            frame = VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = self.index * 90_000 // fps, Fraction(1, 90_000)
            self.index += 1
            return frame

    return PacedCamera()


class BenchPeer:
    """An aiortc peer sending `_camera_track`; ``arrivals`` are the times new stamps came back."""

    def __init__(self, camera: tuple[int, int, int]) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(_camera_track(*camera))
        self.arrivals: list[float] = []
        self.first_frame = asyncio.Event()
        self._last: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        from stages.webrtc.tracks import pump_track

        self._tasks.append(asyncio.create_task(pump_track(track, self._on_frame, lambda: None)))

    def _on_frame(self, frame: object) -> None:
        from av import VideoFrame

        from stages.stamp import read_stamp

        if not isinstance(frame, VideoFrame):
            return
        index = read_stamp(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
        if index is not None and index != self._last:
            self._last = index
            self.arrivals.append(time.monotonic())
            self.first_frame.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        from aiortc import RTCSessionDescription

        from stages.webrtc.ice import filter_candidates

        answer = filter_candidates(answer_sdp, {LOOPBACK})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def call(http: aiohttp.ClientSession, base: str, peer: BenchPeer,
               give_up_s: float = 30.0) -> dict[str, Any]:
    """Offer until answered, waiting as ``Retry-After`` says; the session and the refusals."""
    offer = {"sdp": await peer.offer(), "type": "offer"}
    refusals: Counter[str] = Counter()
    deadline = time.monotonic() + give_up_s
    while True:
        async with http.post(f"{base}/api/offer", json=offer) as response:
            reply = await response.json()
            wait = float(response.headers.get("Retry-After", "1"))
        if response.status == 200:
            await peer.accept(reply["sdp"])
            return {"session": reply["session"], "refusals": dict(refusals)}
        refusals[str(response.status)] += 1
        if response.status not in (429, 503) or time.monotonic() + wait > deadline:
            raise RuntimeError(f"the offer was refused: {response.status} {reply}")
        await asyncio.sleep(wait)


def _http(source: str) -> aiohttp.ClientSession:
    """A client whose connections leave from ``source`` (each peer its own address)."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))


async def _late_peer(base: str, config: FloodBenchConfig) -> dict[str, Any]:
    peer = BenchPeer(config.camera)
    start = time.monotonic()
    try:
        async with _http("127.1.0.100") as http:
            answered = await call(http, base, peer)
            await asyncio.wait_for(peer.first_frame.wait(), 30.0)
            first = time.monotonic() - start
            (await http.delete(f"{base}/api/sessions/{answered['session']}")).release()
        return {"served": True, "refusals": answered["refusals"], "first_frame_s": round(first, 3)}
    except (RuntimeError, TimeoutError) as exc:
        return {"served": False, "error": str(exc)[:200]}
    finally:
        await peer.close()


async def _peers(conn: Connection, base: str, config: FloodBenchConfig) -> None:
    """The peers process: live peers, then the late peer when told, then the arrivals."""
    from stages.webrtc.ice import ice_host_addresses

    with ice_host_addresses([LOOPBACK]):
        live = [BenchPeer(config.camera) for _ in range(config.live_peers)]
        for i, peer in enumerate(live):
            async with _http(f"127.1.0.{i + 1}") as http:
                await call(http, base, peer)
        await asyncio.wait_for(asyncio.gather(*(p.first_frame.wait() for p in live)), 60.0)
        conn.send(("ready", time.monotonic()))
        while await _told(conn, ("late", "stop")) == "late":
            conn.send(("late", await _late_peer(base, config)))
        conn.send(("arrivals", [peer.arrivals for peer in live]))
        for peer in live:
            await peer.close()


async def _told(conn: Connection, words: tuple[str, ...]) -> str:
    said = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    if said not in words:
        raise RuntimeError(f"the benchmark said {said!r}, expected one of {words}")
    return str(said)


async def _flood(conn: Connection, base: str, config: FloodBenchConfig) -> None:
    """The flood process: a real offer to copy, then the flood; its report and the offer."""
    from stages.webrtc.ice import ice_host_addresses

    with ice_host_addresses([LOOPBACK]):
        peer = BenchPeer(config.camera)
        sdp = await peer.offer()
        await peer.close()
    parts = urlsplit(base)
    report = await flood(parts.hostname or LOOPBACK, parts.port or 80, sdp, config)
    conn.send((report.started, report.last_sent, report.figures(), sdp))


def _child_main(role: str, conn: Connection, base: str, config: FloodBenchConfig) -> None:
    main = _peers if role == "peers" else _flood
    try:
        asyncio.run(main(conn, base, config))
    except BaseException as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise


class _Child:
    """A child process (spawned: the parent runs threads) and its end of a pipe."""

    def __init__(self, role: str, base: str, config: FloodBenchConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_child_main, args=(role, theirs, base, config),
                                       name=f"flood-{role}", daemon=True)
        self.process.start()

    def receive(self, timeout_s: float) -> Any:
        if not self.conn.poll(timeout_s):
            raise RuntimeError(f"{self.process.name} said nothing for {timeout_s:g} s")
        message = self.conn.recv()
        if isinstance(message, tuple) and message and message[0] == "failed":
            raise RuntimeError(f"{self.process.name} failed: {message[1]}")
        return message

    def close(self) -> None:
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


# ---- measuring ------------------------------------------------------------------------------
def rss_mb() -> float:
    """This process's resident memory, MB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


@contextlib.contextmanager
def peak_rss(every_s: float = 0.2) -> Iterator[list[float]]:
    """Sample `rss_mb` in a thread while inside; the list holds the samples."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every_s):
            samples.append(rss_mb())

    thread = threading.Thread(target=sample, name="rss", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def window_fps(times: list[float], start: float, end: float) -> float:
    """Arrivals per second within ``[start, end)``."""
    return sum(start <= t < end for t in times) / max(end - start, 1e-9)


def max_gap_ms(times: list[float], start: float, end: float) -> float:
    """The longest wait for an arrival within ``[start, end]`` (the edges count)."""
    inside = [start, *(t for t in times if start < t < end), end]
    return round(max(b - a for a, b in itertools.pairwise(inside)) * 1e3, 1)


def slot_hold_s(server: WebRTCServer, send: Callable[[], int],
                limit_s: float = 30.0) -> tuple[int, float]:
    """``send()``'s status and how long a session it made stayed (0.0 if it made none).

    The server's sessions are read from another thread: ``dict.copy`` is one
    step under the GIL, so each sample is a consistent snapshot.
    """
    before = set(server.sessions.copy())
    start = time.monotonic()
    seen: dict[str, float] = {}
    with _watching(server, before, seen):
        status = send()
        deadline = time.monotonic() + limit_s
        time.sleep(0.2)  # a session made late in the request is seen by now
        while set(server.sessions.copy()) & set(seen) and time.monotonic() < deadline:
            time.sleep(0.005)
    return status, round(max((last - start for last in seen.values()), default=0.0), 3)


@contextlib.contextmanager
def _watching(server: WebRTCServer, before: set[str], seen: dict[str, float]) -> Iterator[None]:
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            now = time.monotonic()
            for sid in set(server.sessions.copy()) - before:
                seen[sid] = now

    thread = threading.Thread(target=watch, name="slot-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def post_offer(base: str, sdp: str) -> int:
    """POST ``sdp`` as an offer from this process (blocking); the status."""
    request = urllib.request.Request(f"{base}/api/offer", data=_offer_json(sdp),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_settled(server: WebRTCServer, sessions: int, limit_s: float = 30.0) -> bool:
    """Wait until ``sessions`` remain and none is pending; whether that happened in time."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        current = list(server.sessions.copy().values())
        if len(current) == sessions and not any(s.pending for s in current):
            return True
        time.sleep(0.05)
    return False


# ---- the benchmark --------------------------------------------------------------------------
def run_flood_bench(config: FloodBenchConfig | None = None) -> dict[str, Any]:
    """Run the flood against live sessions (see the module docstring); flat figures."""
    from stages.webrtc.peer_session import identity_factory
    from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer

    config = config or FloodBenchConfig()
    server = WebRTCServer(ServerConfig(port=0, ice_host=LOOPBACK), identity_factory)
    with ServerThread(server) as url:
        figures = _measure(server, url.rstrip("/"), config)
    return {"stage": "identity", "config": asdict(config), "server": _admission(server),
            **figures}


def _measure(server: WebRTCServer, base: str, config: FloodBenchConfig) -> dict[str, Any]:
    peers = _Child("peers", base, config)
    try:
        _, ready = peers.receive(120.0)
        time.sleep(config.warmup_s)
        start, load = rss_mb(), os.getloadavg()[0]
        control = _settled_after_late_peer(server, config, peers)
        before = control["rss_mb_after"]
        rounds = [_flood_round(server, base, config, peers if i == 0 else None)
                  for i in range(config.floods)]
        holds = _slot_holds(server, base, rounds[0]["offer"])
        peers.conn.send("stop")
        _, arrivals = peers.receive(60.0)
    finally:
        peers.close()
    for done in rounds:
        del done["offer"]
        done.update(_live(arrivals, done.pop("window")))
    return {**_summary(rounds, before), **_baseline(arrivals, ready, config),
            "loadavg_1m_before": round(load, 2), "rss_mb_start": start,
            "rss_mb_change_control": round(before - start, 1), "control": control,
            "slot_hold_s": holds, "rounds": rounds}


def _flood_round(server: WebRTCServer, base: str, config: FloodBenchConfig,
                 late: _Child | None) -> dict[str, Any]:
    """One flood, the late peer after it (from ``late``, if given), the server settled again;
    the round's figures."""
    with peak_rss() as samples:
        flood_child = _Child("flood", base, config)
        started, last_sent, figures, sdp = flood_child.receive(config.seconds + 120.0)
        flood_child.close()
    after = (_settled_after_late_peer(server, config, late) if late is not None
             else _settled(server, config))
    return {**figures, **after, "rss_mb_peak": max(samples, default=float("nan")),
            "window": (started, last_sent), "offer": sdp}


def _settled_after_late_peer(server: WebRTCServer, config: FloodBenchConfig,
                             peers: _Child) -> dict[str, Any]:
    """The late peer comes, is served and hangs up; the server settles; then its memory."""
    peers.conn.send("late")
    _, late = peers.receive(120.0)
    return {"late_peer": late, **_settled(server, config)}


def _settled(server: WebRTCServer, config: FloodBenchConfig) -> dict[str, Any]:
    """Only the live sessions left, none pending (the flood's gone); then the memory."""
    settled = wait_settled(server, config.live_peers)
    time.sleep(1.0)
    return {"settled": settled, "rss_mb_after": rss_mb()}


def _summary(rounds: list[dict[str, Any]], before: float) -> dict[str, Any]:
    """The rounds' worst and total figures, flat; the first round's memory change apart."""
    late = rounds[0]["late_peer"]
    statuses: Counter[str] = sum((Counter(r["statuses"]) for r in rounds), Counter())
    return {"statuses": dict(sorted(statuses.items())), "sent": sum(r["sent"] for r in rounds),
            "achieved_rate_per_s": min(r["achieved_rate_per_s"] for r in rounds),
            "retry_after_missing": sum(r["retry_after_missing"] for r in rounds),
            "live_fps_min": min(min(r["live_fps"]) for r in rounds),
            "live_max_gap_ms": max(max(r["live_max_gap_ms"]) for r in rounds),
            "late_peer_served": late["served"],
            "late_peer_first_frame_s": late.get("first_frame_s"),
            "rss_mb_before": before, "rss_mb_peak": max(r["rss_mb_peak"] for r in rounds),
            "rss_mb_after_first": rounds[0]["rss_mb_after"],
            "rss_mb_after_last": rounds[-1]["rss_mb_after"],
            "rss_mb_change_first": round(rounds[0]["rss_mb_after"] - before, 1),
            "rss_mb_change_after_first": round(rounds[-1]["rss_mb_after"]
                                               - rounds[0]["rss_mb_after"], 1)}


def _slot_holds(server: WebRTCServer, base: str, sdp: str) -> dict[str, Any]:
    copied = never_connecting(sdp)
    bare = "".join(line for line in copied.splitlines(keepends=True)
                   if not line.startswith("a=fingerprint:"))
    bare_status, bare_hold = slot_hold_s(server, lambda: post_offer(base, bare))
    dead_status, dead_hold = slot_hold_s(server, lambda: post_offer(base, copied))
    return {"no_fingerprint": bare_hold, "no_fingerprint_status": bare_status,
            "never_connecting": dead_hold, "never_connecting_status": dead_status}


def _live(arrivals: list[list[float]], window: tuple[float, float]) -> dict[str, Any]:
    """Each live peer's returned frame rate and longest gap over a flood's ``window``."""
    start, end = window
    seconds = [(start + i, start + i + 1) for i in range(int(end - start))]
    return {"live_fps": [round(window_fps(a, *window), 1) for a in arrivals],
            "live_max_gap_ms": [max_gap_ms(a, *window) for a in arrivals],
            "live_fps_by_second": [[round(window_fps(a, *s)) for s in seconds] for a in arrivals]}


def _baseline(arrivals: list[list[float]], ready: float,
              config: FloodBenchConfig) -> dict[str, Any]:
    end = ready + config.warmup_s
    warm = (end - min(BASELINE_S, config.warmup_s), end)
    return {"live_fps_before": [round(window_fps(a, *warm), 1) for a in arrivals]}


def _admission(server: WebRTCServer) -> dict[str, Any]:
    c = server.config
    return {"max_sessions": c.max_sessions, "max_pending": c.max_pending,
            "connect_timeout_s": c.session.connect_timeout_s,
            "offer_rate_per_s": c.offer_rate_per_s, "offer_burst": c.offer_burst,
            "api_rate_per_s": c.api_rate_per_s, "api_burst": c.api_burst}
