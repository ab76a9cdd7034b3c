"""Sessions that end unasked come back by themselves: `vicocam client` against an in-process
`vicocam serve` whose session is closed under it, or goes silent as a dead server does, calls
again and gets video on a new session; a full server's 503 is waited out; refusals that
retrying cannot fix are not retried. And the page does the same in headless Chromium."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from fractions import Fraction

import cv2
import numpy as np
import pytest

pytest.importorskip("aiortc")

from aiohttp import web
from av import VideoFrame

from pipeline.stage import SourceFrame, SourceInfo
from stages.io import PatternConfig, PatternSource
from stages.webrtc.client import ClientConfig, ClientError, ClientReport, run_client
from stages.webrtc.impairment import ImpairedLink, LinkConditions
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.reconnect import Liveness, PtsBridge, backoff_s, retry_after_s
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.peers import (
    ReturnedFrames,
    api_client,
    browser_marks,
    evaluate_on_page,
    sessions_settings,
    wait_for,
    wait_for_message,
    wait_until_freed,
)

SESSION = SessionConfig(stall_timeout_s=2.0, watchdog_interval_s=0.2)


class EndableSource:
    """A stamped pattern until ``done`` is set: the test says when the run ends."""

    name = "endable"

    def __init__(self) -> None:
        self.inner = PatternSource(PatternConfig(width=160, height=120, fps=30))
        self.done = threading.Event()

    def open(self) -> SourceInfo:
        return self.inner.open()

    def read(self) -> SourceFrame | None:
        return None if self.done.is_set() else self.inner.read()

    def close(self) -> None:
        self.inner.close()


def identity_server(**config) -> WebRTCServer:
    return WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=SESSION, **config))


async def call_through_a_loss(server: WebRTCServer, lose, **client) -> tuple:
    """Run a client until it has video, ``await lose(session id, links)``, run it until video
    is back on another session; the report and the sessions seen on the server."""
    source, sink, links = EndableSource(), ReturnedFrames(), []
    async with api_client(server.build_app()) as http:
        config = ClientConfig(server=str(http.make_url("/")), ice_host="127.0.0.1",
                              **client)
        run = asyncio.create_task(run_client(config, source, sink, on_link=links.append))
        await wait_for(lambda: len(sink.frames) > 10 or run.done())
        first = next(iter(server.sessions))
        lost_at = time.monotonic()
        await lose(first, links)
        await wait_for(lambda: len(sink.since(lost_at)) > 10 or run.done())
        seen = [first, *[sid for sid in server.sessions if sid != first]]
        source.done.set()
        report = await run
        await wait_for(lambda: not server.sessions)
    return report, seen, sink, lost_at


def test_a_client_whose_session_is_closed_on_the_server_calls_again():
    server = identity_server()

    async def close_it(sid, links):
        await server.sessions[sid].close("the test closed it")

    report, seen, sink, lost_at = asyncio.run(call_through_a_loss(server, close_it))
    assert report.sessions == seen and len(seen) == 2  # a new session, on the same server
    first, second = report.calls
    assert first.reason in ("connection closed", "the server closed the control channel",
                            "the server's video ended")
    assert second.first_frame is not None and second.first_frame > first.ended
    assert second.reason == "the run ended" and report.gave_up is None
    after = [s for s in sink.since(lost_at) if s is not None]
    assert len(after) > 10 and after == sorted(after)  # the same camera, still in order
    assert report.frames_received == len(sink.frames)


def test_a_server_that_goes_silent_is_left_and_called_again():
    """A dead server sends nothing: its link blacked out, the call hears no heartbeat."""
    server = identity_server()

    async def black_out(sid, links: list[ImpairedLink]):
        links[0].black_out(60.0)  # the first call's link only; the next call's is fresh

    report, seen, _, _ = asyncio.run(call_through_a_loss(
        server, black_out, heartbeat_timeout_s=1.0, network=LinkConditions()))
    first, second = report.calls[0], report.calls[-1]
    assert first.reason == "nothing from the server for 1 s"
    assert second.session == seen[1] and second.first_frame is not None
    assert report.network is not None and report.network["sockets"] >= 2  # both calls' links


def test_without_reconnect_the_run_ends_with_the_session():
    server = identity_server()

    async def scenario():
        source, sink = EndableSource(), ReturnedFrames()
        async with api_client(server.build_app()) as http:
            config = ClientConfig(server=str(http.make_url("/")), ice_host="127.0.0.1",
                                  reconnect=False)
            run = asyncio.create_task(run_client(config, source, sink))
            await wait_for(lambda: len(sink.frames) > 10)
            await server.sessions[next(iter(server.sessions))].close("the test closed it")
            return await run

    report = asyncio.run(scenario())
    assert len(report.calls) == 1 and report.ended.startswith("the call ended: ")
    assert report.gave_up is None


def refusing(statuses: list[int], retry_after: str | None, offers: list[float]):
    """A middleware answering the next offers with ``statuses`` (then letting them through)."""
    @web.middleware
    async def refuse(request: web.Request, handler):
        if request.path != "/api/offer":
            return await handler(request)
        offers.append(time.monotonic())
        if not statuses:
            return await handler(request)
        headers = {"Retry-After": retry_after} if retry_after else None
        return web.json_response({"error": "no capacity: every replica is full"},
                                 status=statuses.pop(0), headers=headers)

    return refuse


def run_refused(statuses: list[int], retry_after: str | None = None, **client):
    """A short run against a server refusing the first offers; (report or error, offer times)."""
    server, offers = identity_server(), []
    app = server.build_app()
    app.middlewares.insert(0, refusing(statuses, retry_after, offers))

    async def scenario():
        async with api_client(app) as http:
            config = ClientConfig(server=str(http.make_url("/")), ice_host="127.0.0.1",
                                  duration_s=1.5, **client)
            source = PatternSource(PatternConfig(width=160, height=120, fps=30))
            try:
                return await run_client(config, source, ReturnedFrames())
            except ClientError as exc:
                return exc
            finally:
                await wait_for(lambda: not server.sessions)

    return asyncio.run(scenario()), offers


def test_a_full_servers_retry_after_is_waited_out():
    report, offers = run_refused([503], retry_after="1")
    assert isinstance(report, ClientReport), report
    refused, call = report.calls
    assert refused.session is None and "503" in refused.reason and "no capacity" in refused.reason
    assert call.session and call.first_frame is not None
    assert offers[1] - offers[0] >= 1.0  # not before the server said
    assert report.ended == "sending ended (duration)" and report.gave_up is None


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refusals_that_retrying_cannot_fix_end_the_run(status):
    error, offers = run_refused([status, 503])
    assert isinstance(error, ClientError) and f"({status})" in str(error)
    assert len(offers) == 1


def test_a_server_full_for_longer_than_the_client_waits_is_given_up():
    error, offers = run_refused([503] * 5, retry_after="5", reconnect_for_s=2.0)
    assert isinstance(error, ClientError) and "gave up" in str(error)
    assert len(offers) == 1  # a wait past the limit is not even started


# ---- the parts, on injected clocks ---------------------------------------------------------
def test_backoff_starts_at_once_and_doubles_to_a_cap():
    assert [backoff_s(n) for n in range(7)] == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert [retry_after_s(h) for h in ("3", "0.5", None, "Wed, 21 Oct 2015", "-1")] == [
        3.0, 0.5, None, None, None]


def test_liveness_needs_video_then_any_sign_of_life():
    now = [0.0]
    alive = Liveness(connect_timeout_s=5.0, silence_s=3.0, clock=lambda: now[0])
    now[0] = 100.0
    assert alive.lost() is None  # not started
    alive.start()
    alive.beat()  # a stats message, but no video yet
    now[0] = 102.9
    assert alive.lost() is None
    now[0] = 103.5
    assert alive.lost() == "nothing from the server for 3 s"
    alive.beat()
    now[0] = 105.5
    assert alive.lost() == "no video within 5 s"
    alive.frame()
    now[0] = 108.0
    assert alive.lost() is None
    now[0] = 108.6
    assert alive.lost() == "nothing from the server for 3 s"


def test_returned_timestamps_keep_growing_across_calls():
    now = [0]
    bridge = PtsBridge(clock_ns=lambda: now[0])

    def frame(pts: int) -> VideoFrame:
        f = VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
        f.pts, f.time_base = pts, Fraction(1, 90_000)
        return f

    assert bridge.rebase(frame(3000)).pts == 3000
    now[0] = 2 * 10**9  # the next call's first frame, 2 s later, starts its clock again
    bridge.next_call()
    assert bridge.rebase(frame(0)).pts == 3000 + 180_000
    assert bridge.rebase(frame(3000)).pts == 3000 + 183_000


# ---- the page, in headless Chromium -------------------------------------------------------
def browser_test(test):
    for mark in browser_marks():
        test = mark(test)
    return test


def write_png(path, width: int, height: int):
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 200, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def wait_for_video(page, sessions: int) -> None:
    """Until the page holds its ``sessions``-th session, restored, and shows 30 of its frames."""
    page.wait_for_function(
        "n => { const v = window.vicocam; return v.error || (v.sessions.length >= n && "
        "v.control && v.control.open && !v.reconnecting); }", arg=sessions, timeout=60_000)
    assert page.evaluate("window.vicocam.error") is None
    shown = page.evaluate("window.vicocam.stalls.frames")  # counts this session's frames now
    page.wait_for_function("n => window.vicocam.stalls.frames > n + 30", arg=shown,
                           timeout=30_000)


def digest(path) -> str:
    return "upload:" + hashlib.sha256(path.read_bytes()).hexdigest()


@browser_test
def test_the_page_comes_back_by_itself_with_its_avatar_and_settings(tmp_path):
    from tests.webrtc.peers import chromium_page

    presets = tmp_path / "avatars"
    presets.mkdir()
    preset = write_png(presets / "preset.png", 96, 128)
    upload = write_png(tmp_path / "mine.png", 120, 160)
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", session=SESSION,
                                       avatars_dir=presets))
    thread = ServerThread(server)
    session_requests: list[str] = []
    with thread as url, chromium_page() as page:
        page.on("request", lambda r: session_requests.append(r.method)
                if "/api/sessions/" in r.url else None)
        page.goto(url + "?autostart=1")
        wait_for_video(page, 1)
        page.select_option("#avatar-select", "preset.png")
        wait_for_message(page, "avatar: preset.png")
        page.locator("#strength").fill("1.5")
        wait_for_message(page, "strength 1.50")
        first = page.evaluate("window.vicocam.session")
        # The server ends the session: the page is told (its connection and channel close).
        thread.call(lambda: asyncio.ensure_future(server.sessions[first].close("test")))
        wait_for_video(page, 2)
        after_close = sessions_settings(thread, server), list(server.sessions)
        page.set_input_files("#avatar-file", str(upload))
        wait_for_message(page, "(120x160)")
        # The server freezes as a dead one does: nothing comes, nothing closes.
        thread.call(lambda: time.sleep(4.5))
        wait_for_video(page, 3)
        after_silence = sessions_settings(thread, server), list(server.sessions)
        seen = page.evaluate("window.vicocam.sessions")
        losses = page.evaluate("window.vicocam.losses.map(l => [l.session, l.reason])")
        page.click("#stop")
        left = wait_until_freed(server)
        time.sleep(1.5)  # long enough for a reconnect to have started, were one coming
        ended = page.evaluate("[window.vicocam.sessions.length, window.vicocam.reconnecting,"
                              " document.getElementById('status').textContent]")
    assert len(set(seen)) == 3 and seen[0] == first
    assert losses[0][0] == first and losses[0][1] in (
        "the server closed the session", "the connection closed", "the connection failed")
    assert losses[1] == [seen[1], "nothing from the server for 3 s"]
    settings, open_sessions = after_close
    assert open_sessions == [seen[1]]  # the page's new session is the server's only one
    assert settings.avatar.source == digest(preset) and settings.strength == 1.5
    settings, open_sessions = after_silence
    assert open_sessions == [seen[2]]
    assert settings.avatar.source == digest(upload) and settings.strength == 1.5
    assert left == 0 and ended == [3, False, "idle"]  # hung up: no new session
    assert set(session_requests) == {"DELETE"}  # everything else went on the data channel


PAGE_RULES = """async () => {
  const r = await import('/static/reconnect.js');
  return {
    backoff: [0, 1, 2, 3, 4, 5, 6, 7].map(r.backoffMs),
    retry: [{status: 503}, {status: 429}, {status: 502}, {}, {status: 400}, {status: 401},
            {status: 403}].map(r.retryable),
    full: r.retryDelayMs({status: 503, retryAfter: 3}, 1),
    silence: r.SILENCE_MS,
  };
}"""


@browser_test
def test_the_pages_retry_rules_are_the_clients():
    rules = evaluate_on_page(PAGE_RULES)
    assert rules["backoff"] == [0, 250, 500, 1000, 2000, 4000, 4000, 4000]
    assert rules["retry"] == [True, True, True, True, False, False, False]
    assert rules["full"] == 3000  # the server's Retry-After, over the backoff
    assert rules["silence"] == 3000
