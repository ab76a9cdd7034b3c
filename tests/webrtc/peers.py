"""Helpers for WebRTC tests: a stamped test track and an in-process aiortc peer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av import VideoFrame

from pipeline.frame import Frame
from pipeline.stage import StageBase
from stages.stamp import read_stamp, stamp
from stages.webrtc.ice import filter_candidates, ice_host_addresses
from stages.webrtc.tracks import pump_track

W, H = 160, 120


class StampedTrack(MediaStreamTrack):
    """30 fps test video with the frame index stamped; ``pause()`` stops sending."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.index = 0
        self._running = asyncio.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    async def recv(self) -> VideoFrame:
        await self._running.wait()
        await asyncio.sleep(1 / 30)
        image = np.full((H, W, 3), 90, np.uint8)
        stamp(image, self.index)
        frame = VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = self.index * 3000, Fraction(1, 90_000)
        self.index += 1
        return frame


class TestPeer:
    """An aiortc peer that sends a `StampedTrack` and records the returned stamps."""

    __test__ = False

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = StampedTrack()
        self.pc.addTrack(self.track)
        self.returned: list[int | None] = []
        self.got_frame = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(pump_track(track, self._on_frame, lambda: None)))

    def _on_frame(self, frame: object) -> None:
        if isinstance(frame, VideoFrame):
            self.returned.append(read_stamp(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)))
            self.got_frame.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        answer = filter_candidates(answer_sdp, {"127.0.0.1"})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def answering_peer(offer_sdp: str) -> RTCPeerConnection:
    """An aiortc peer that took ``offer_sdp`` and will send a `StampedTrack` back.

    Its answer is not made yet: a test installs what it checks first, then
    calls `make_answer`.
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.on("track", lambda track: pc.addTrack(StampedTrack()) if track.kind == "video" else None)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    return pc


async def make_answer(pc: RTCPeerConnection) -> str:
    """Create and set ``pc``'s answer; its SDP."""
    await pc.setLocalDescription(await pc.createAnswer())
    return str(pc.localDescription.sdp)


async def post_offer(client: TestClient, peer: TestPeer, offer_sdp: str | None = None) -> dict:
    """Send ``peer``'s offer (or ``offer_sdp``) to the server, take its answer; the reply."""
    sdp = offer_sdp if offer_sdp is not None else await peer.offer()
    response = await client.post("/api/offer", json={"sdp": sdp, "type": "offer"})
    reply: dict = await response.json()
    assert response.status == 200, reply
    await peer.accept(reply["sdp"])
    return reply


@contextlib.asynccontextmanager
async def api_client(app: web.Application) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(app)) as client:
        yield client


async def wait_for(predicate, step: float = 0.05, limit_s: float = 30.0) -> None:
    """Poll ``predicate`` until true; a generous overall limit guards against hangs."""
    for _ in range(int(limit_s / step)):
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError("condition not reached in time")


# ---- browser tests ---------------------------------------------------------------------
MESSAGE = "document.getElementById('message').textContent"


class ReturnedFrames(StageBase):
    """A client's sink: each returned frame's arrival time (monotonic) and stamp."""

    name = "returned"
    blocking = False

    def __init__(self) -> None:
        self.frames: list[tuple[float, int | None]] = []

    def process(self, frame: Frame) -> Frame:
        self.frames.append((time.monotonic(), read_stamp(frame.image)))
        return frame

    def since(self, moment: float) -> list[int | None]:
        return [stamp for t, stamp in self.frames if t > moment]


def run_on_loopback(coro, limit_s: float):
    """Run ``coro`` to its end within ``limit_s``, aiortc gathering ICE on 127.0.0.1 only."""
    async def bounded():
        async with asyncio.timeout(limit_s):
            return await coro
    with ice_host_addresses(["127.0.0.1"]):
        return asyncio.run(bounded())


def wait_for_message(page, text: str) -> None:
    """Wait until the page's status line says ``text`` (a control's change was confirmed)."""
    page.wait_for_function(f"{MESSAGE}.includes({text!r})", timeout=30_000)


def sessions_settings(thread, server):
    """The `LiveSettings` of the server's only session, read on the server's loop."""
    return thread.call(lambda: [s.settings.get() for s in server.sessions.values()])[0]


def wait_until_freed(server, limit_s: float = 30.0) -> int:
    """Sessions still open once all closed, or after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while server.sessions and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(server.sessions)

def browser_marks() -> list[pytest.MarkDecorator]:
    """Marks of a real-browser test: ``browser``, skipped without Chromium or playwright."""
    from benchmarks.browser import INSTALL_HINT, find_chromium, playwright_available

    return [
        pytest.mark.browser,
        pytest.mark.skipif(find_chromium() is None, reason=f"no Chromium; {INSTALL_HINT}"),
        pytest.mark.skipif(not playwright_available(), reason=f"no playwright; {INSTALL_HINT}"),
    ]


@contextlib.contextmanager
def chromium_page() -> Iterator[Any]:
    """A new page of headless Chromium with the tests' flags (fake camera), not yet
    loaded; the browser is closed on the way out."""
    from playwright.sync_api import sync_playwright

    from benchmarks.browser import CHROMIUM_ARGS, find_chromium

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True,
                                    args=list(CHROMIUM_ARGS))
        try:
            yield browser.new_page()
        finally:
            browser.close()


def evaluate_on_page(script: str) -> object:
    """Run ``script`` (a JS function) in headless Chromium on the served page; its result."""
    from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer

    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1"))
    with ServerThread(server) as url, chromium_page() as page:
        page.goto(url)
        return page.evaluate(script)
