"""The test peers of ``vicocam bench soak``: ``vicocam client`` calls in a process of their own.

Each peer is `stages.webrtc.client.run_client` (the path of ``vicocam
client``) sending a `StampedCamera`: the synthetic held-out person at
640 x 480, paced at 30 fps by the client's runtime, with each frame's index
stamped into its top band (`stages.stamp`). The server relays the stamp to
the avatar frame it drove (`stages.webrtc.stamp_relay.StampRelay`), and the
peer's `ReturnProbe` reads it back: latency is camera capture to the
returned frame decoded at the peer, per frame.

The peers live in a child process so that the soak's memory, thread and file
counts are the server's alone (aiortc peers in the same process would add
their own codecs, sockets and threads), and so that they use the machine as
remote browsers would, not the server's interpreter. The parent drives them
over a pipe (`PeerHost.ask`) with four commands:

    join    start a peer; the reply comes once its first returned frame was
            decoded (or it failed): ``{"peer", "ok", "join_s"}``.
    leave   the oldest peer hangs up (its camera ends, the client closes the
            call and sends DELETE): ``{"peer", "ok"}``.
    stats   per live peer, its window since the last stats (frames, fps,
            latency p50/p95), the window's latency over all peers, and every
            peer lost so far (its call ended without being asked to leave).
    stop    every live peer leaves; the reply has how many left, the lost ones
            and the latency per minute since the first join.

Replies are plain dicts (pickled over the pipe).
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any

from pipeline.frame import Frame, Image
from pipeline.metrics import percentile
from pipeline.stage import SourceFrame, SourceInfo, StageBase
from stages.stamp import read_stamp, stamp

FPS = 30
LOOPBACK = "127.0.0.1"
JOIN_TIMEOUT_S = 30.0
LEAVE_TIMEOUT_S = 30.0
RING = 1024
"""Capture times a camera keeps (34 s at 30 fps): far longer than any frame takes back."""
_MINUTE_NS = 60_000_000_000


class StampedCamera:
    """A clip replayed at 30 fps with every frame's index stamped in.

    It remembers when each index was read (its capture time) for `captured_ns`;
    after `end` the next read is the end of the stream (the peer hangs up).
    """

    name = "stamped_camera"

    def __init__(self, clip: Sequence[Image], fps: int = FPS) -> None:
        self.clip = clip
        self.rate = Fraction(fps)
        self._sent_ns = [0] * RING
        self._index = 0
        self._ended = threading.Event()

    def open(self) -> SourceInfo:
        height, width = self.clip[0].shape[:2]
        return SourceInfo(width, height, self.rate, self_paced=False)

    def read(self) -> SourceFrame | None:
        if self._ended.is_set():
            return None
        index = self._index
        picture = self.clip[index % len(self.clip)].copy()
        stamp(picture, index)
        self._sent_ns[index % RING] = time.monotonic_ns()
        self._index += 1
        return SourceFrame(picture, pts=index, time_base=1 / self.rate)

    def close(self) -> None:
        self._ended.set()

    def end(self) -> None:
        self._ended.set()

    def captured_ns(self, index: int) -> int | None:
        """When frame ``index`` was read; ``None`` if it was not, or too long ago."""
        return self._sent_ns[index % RING] if 0 <= self._index - 1 - index < RING else None


@dataclass
class Window:
    """What one peer got back since the last look."""

    frames: int = 0
    unstamped: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class MinuteBook:
    """Latencies of every peer by minute since the first frame came back."""

    def __init__(self) -> None:
        self.start_ns: int | None = None
        self.minutes: dict[int, list[float]] = {}

    def add(self, now_ns: int, ms: float) -> None:
        self.start_ns = self.start_ns or now_ns
        self.minutes.setdefault((now_ns - self.start_ns) // _MINUTE_NS, []).append(ms)

    def summary(self) -> list[dict[str, Any]]:
        return [{"minute": m, **latency_summary(v), "samples": len(v)}
                for m, v in sorted(self.minutes.items())]


class PeerBook:
    """One peer's returned frames: the current window and its share of the minutes."""

    def __init__(self, minutes: MinuteBook) -> None:
        self.minutes = minutes
        self.window = Window()
        self.first = asyncio.Event()  # set by the first frame back (on the loop: not blocking)
        self._since_ns = time.monotonic_ns()

    def add(self, now_ns: int, sent_ns: int | None) -> None:
        self.first.set()
        self.window.frames += 1
        if sent_ns is None:
            self.window.unstamped += 1
            return
        ms = (now_ns - sent_ns) / 1e6
        self.window.latencies_ms.append(ms)
        self.minutes.add(now_ns, ms)

    def take(self, now_ns: int) -> tuple[dict[str, Any], list[float]]:
        """The window's figures and latencies; a new window starts."""
        window, self.window = self.window, Window()
        seconds = max((now_ns - self._since_ns) / 1e9, 1e-9)
        self._since_ns = now_ns
        row = {"frames": window.frames, "fps": round(window.frames / seconds, 2),
               **latency_summary(window.latencies_ms), "unstamped": window.unstamped}
        return row, window.latencies_ms


class ReturnProbe(StageBase):
    """The peer's sink: reads the stamp of each returned frame and books its latency."""

    name = "stamp_check"
    blocking = False  # 36 cell means of one band: microseconds

    def __init__(self, camera: StampedCamera, book: PeerBook) -> None:
        self.camera = camera
        self.book = book

    def process(self, frame: Frame) -> Frame:
        index = read_stamp(frame.image)
        sent = None if index is None else self.camera.captured_ns(index)
        self.book.add(time.monotonic_ns(), sent)
        return frame


@dataclass(eq=False)
class Peer:
    name: str
    camera: StampedCamera
    book: PeerBook
    call: asyncio.Task[Any]


class PeerPool:
    """The live peers of the child process and what they measured."""

    def __init__(self, url: str, clip: Sequence[Image]) -> None:
        self.url = url
        self.clip = clip
        self.peers: dict[str, Peer] = {}
        self.minutes = MinuteBook()
        self.lost: list[dict[str, str]] = []
        self.joined = 0
        self.left = 0

    async def join(self) -> dict[str, Any]:
        from stages.webrtc.client import ClientConfig, run_client

        self.joined += 1
        camera, book = StampedCamera(self.clip), PeerBook(self.minutes)
        # A lost session must count as lost, not be replaced by a new call.
        config = ClientConfig(server=self.url, ice_host=LOOPBACK, connect_timeout_s=JOIN_TIMEOUT_S,
                              reconnect=False)
        name = f"peer{self.joined}"
        call = asyncio.create_task(run_client(config, camera, ReturnProbe(camera, book)), name=name)
        self.peers[name] = Peer(name, camera, book, call)
        started = time.monotonic()
        ok = await _first_frame(self.peers[name], JOIN_TIMEOUT_S)
        return {"peer": name, "ok": ok, "join_s": round(time.monotonic() - started, 2)}

    async def leave(self) -> dict[str, Any]:
        self._collect_lost()
        peer = next(iter(self.peers.values()), None)
        if peer is None:
            return {"peer": None, "ok": False}
        del self.peers[peer.name]
        peer.camera.end()
        done, _ = await asyncio.wait({peer.call}, timeout=LEAVE_TIMEOUT_S)
        if not done:  # a call that does not end is not left running behind the next ones
            peer.call.cancel()
        self.left += 1
        return {"peer": peer.name, "ok": bool(done) and _outcome(peer.call) is None}

    async def stats(self) -> dict[str, Any]:
        self._collect_lost()
        now = time.monotonic_ns()
        rows: list[dict[str, Any]] = []
        every: list[float] = []
        for peer in self.peers.values():
            row, latencies = peer.book.take(now)
            rows.append({"peer": peer.name, **row})
            every += latencies
        return {"peers": rows, **latency_summary(every), "lost": list(self.lost)}

    async def stop(self) -> dict[str, Any]:
        self._collect_lost()  # a peer lost since the last look is not counted as leaving
        while self.peers:
            await self.leave()
        return {"joined": self.joined, "left": self.left, "lost": self.lost,
                "minutes": self.minutes.summary()}

    def _collect_lost(self) -> None:
        """Move every peer whose call ended unasked to `lost`, with why."""
        for peer in [p for p in self.peers.values() if p.call.done()]:
            del self.peers[peer.name]
            why = _outcome(peer.call) or "the call ended (the server closed it)"
            self.lost.append({"peer": peer.name, "why": why})


async def _first_frame(peer: Peer, timeout_s: float) -> bool:
    """Wait until the peer's first frame came back, its call ended, or ``timeout_s``."""
    first = asyncio.create_task(peer.book.first.wait())
    await asyncio.wait({first, peer.call}, timeout=timeout_s,
                       return_when=asyncio.FIRST_COMPLETED)
    first.cancel()
    return peer.book.first.is_set()


def _outcome(call: asyncio.Task[Any]) -> str | None:
    """Why a finished call failed (``None``: it ended cleanly, or is still running)."""
    if not call.done():
        return None
    if call.cancelled():
        return "cancelled"
    error = call.exception()
    return None if error is None else f"{type(error).__name__}: {error}"


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    """``latency_p50_ms`` and ``latency_p95_ms`` of ``values``, to 0.1 (``None``: none)."""
    return {f"latency_p{q}_ms": _rounded(percentile(values, q)) for q in (50, 95)}


def _rounded(value: float) -> float | None:
    return round(value, 1) if math.isfinite(value) else None


# ---- the child process ---------------------------------------------------------------
def host_main(conn: Connection, url: str) -> None:
    """The child process: render the camera clip, then answer commands until ``stop``."""
    from benchmarks.sessions import render_clip

    logging.basicConfig(level=logging.WARNING,
                        format="soak peers: %(levelname)s %(name)s: %(message)s")
    asyncio.run(_answer(conn, PeerPool(url, render_clip())))


async def _answer(conn: Connection, pool: PeerPool) -> None:
    commands: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "join": pool.join, "leave": pool.leave, "stats": pool.stats, "stop": pool.stop}
    conn.send({"ready": True})
    while True:
        try:
            command = await asyncio.to_thread(conn.recv)
        except EOFError:  # the parent is gone: hang up, nobody to answer
            await pool.stop()
            return
        conn.send(await commands[command]())
        if command == "stop":
            return


class PeerHost:
    """The peers' process, seen from the soak's: ``with PeerHost(url) as peers: peers.ask(...)``."""

    def __init__(self, url: str, start_timeout_s: float = 120.0) -> None:
        self.url = url
        self._start_timeout_s = start_timeout_s
        context = multiprocessing.get_context("spawn")  # this process has threads: no fork
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=host_main, args=(theirs, url),
                                        name="soak-peers", daemon=True)
        self._theirs = theirs

    def __enter__(self) -> PeerHost:
        self._process.start()
        self._theirs.close()
        self._receive(self._start_timeout_s)
        return self

    def ask(self, command: str, timeout_s: float = 90.0) -> dict[str, Any]:
        """Send ``command`` (see the module docstring) and return the reply."""
        self._conn.send(command)
        return self._receive(timeout_s)

    def _receive(self, timeout_s: float) -> dict[str, Any]:
        if not self._process.is_alive() and not self._conn.poll():
            raise RuntimeError(f"the soak's peer process ended (exit {self._process.exitcode})")
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"the soak's peers did not answer within {timeout_s:g} s")
        reply: dict[str, Any] = self._conn.recv()
        return reply

    def __exit__(self, *exc: object) -> None:
        self._conn.close()
        self._process.join(timeout=LEAVE_TIMEOUT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
