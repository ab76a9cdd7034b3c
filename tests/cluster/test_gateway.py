"""`ClusterGateway` and `SessionHost` without Ray: hosts in this process, or scripted streams."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

pytest.importorskip("aiortc")

from pipeline.app.cluster.config import ReplicaConfig
from pipeline.app.cluster.replica import HUNG_UP, SessionHost, heartbeats
from stages.webrtc.gateway import (
    HOST_LOST,
    IN_CLUSTER,
    NO_CAPACITY,
    NO_HOST_IN_TIME,
    ClusterGateway,
    GatewayConfig,
    refusal_item,
    refusal_of,
)
from stages.webrtc.peer_session import Session, SessionConfig, identity_factory
from stages.webrtc.server import ServerConfig, SessionRefusedError
from tests.cluster.local_hosts import LocalHosts, StreamCancelledError
from tests.webrtc.peers import TestPeer, api_client, run_on_loopback, wait_for

ANSWER = {"sdp": "v=0\r\n", "type": "answer", "session": "s1", "replica": "r1"}


def run(coro, limit_s: float = 60.0):
    return run_on_loopback(coro, limit_s)


class FakeStream:
    """Yields ``items`` (and those `push` adds), then waits for `finish`, `fail` or `cancel`."""

    def __init__(self, *items):
        self.items = list(items)
        self.cancelled = self.finished = False
        self.error: BaseException | None = None
        self.wake = asyncio.Event()

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self.items:
            if self.cancelled:
                raise StreamCancelledError("cancelled")
            if self.error is not None:
                raise self.error
            if self.finished:
                raise StopAsyncIteration
            self.wake.clear()
            await self.wake.wait()
        return self.items.pop(0)

    def push(self, item):
        self.items.append(item)
        self.wake.set()

    def cancel(self):
        self.cancelled = True
        self.wake.set()

    def fail(self, error: BaseException):
        self.error = error
        self.wake.set()

    def finish(self):
        self.finished = True
        self.wake.set()
        return self


class FakeHosts:
    """An `OpenStream` handing out the given streams in order (and recording the offers)."""

    def __init__(self, *streams):
        self.streams = list(streams)
        self.offers: list[dict] = []

    def __call__(self, offer):
        self.offers.append(offer)
        return self.streams[len(self.offers) - 1]


def gateway(open_stream, capacity: int = 2, **config) -> ClusterGateway:
    settings = {k: config.pop(k) for k in ("answer_timeout_s", "heartbeat_timeout_s")
                if k in config}
    return ClusterGateway(ServerConfig(**config), open_stream,
                          GatewayConfig(capacity=capacity, **settings))


async def a_valid_offer() -> str:
    peer = TestPeer()
    try:
        return await peer.offer()
    finally:
        await peer.close()


async def post(client, sdp: str):
    response = await client.post("/api/offer", json={"sdp": sdp, "type": "offer"})
    return response.status, await response.json(), response.headers.get("Retry-After")


# ---- with hosts in this process (real sessions, media) --------------------------------------
def test_an_offer_is_answered_by_a_host_and_ends_there_when_the_peer_hangs_up():
    hosts = LocalHosts(count=1, per_host=2)
    server = gateway(hosts.open_stream)

    async def scenario():
        peer = TestPeer()
        async with api_client(server.build_app()) as client:
            status, reply, _ = await post(client, await peer.offer())
            await peer.accept(reply["sdp"])
            await asyncio.wait_for(peer.got_frame.wait(), 20)
            sid = reply["session"]
            host_session = hosts.hosts[0].server.sessions[sid]
            await wait_for(lambda: server.remote[sid].stats.get("frames_received"), limit_s=10)
            stats = await (await client.get(f"/api/sessions/{sid}/stats")).json()
            refused = [await client.post(f"/api/sessions/{sid}/settings", json={"reset": True}),
                       await client.post(f"/api/sessions/{sid}/avatar", json={"name": None})]
            refusals = [(r.status, await r.json()) for r in refused]
            gone = await client.post("/api/sessions/nope/settings", json={"reset": True})
            hung_up = await client.delete(f"/api/sessions/{sid}")
            await peer.close()
            return (status, reply, stats, refusals, gone.status, hung_up.status,
                    host_session.close_reason)

    try:
        status, reply, stats, refusals, gone, hung_up, reason = run(scenario())
    finally:
        asyncio.run(hosts.close())
    assert status == 200 and reply["type"] == "answer" and reply["replica"] == "host-0"
    assert stats["replica"] == "host-0" and stats["frames_received"] > 0
    assert refusals == [(409, {"error": IN_CLUSTER})] * 2 and "data channel" in IN_CLUSTER
    assert gone == 404 and hung_up == 200
    assert reason == HUNG_UP and server.remote == {} and hosts.hosts[0].server.sessions == {}
    assert hosts.streams[0].cancelled


def test_a_host_refuses_a_bad_offer_or_a_full_house_with_one_item():
    async def scenario():
        host = SessionHost(ReplicaConfig(ServerConfig(max_sessions=1)))
        bad = [item async for item in host.session({"sdp": "v=1", "type": "offer"})]
        envelope = [item async for item in host.session({"type": "answer"})]
        host.server.sessions["busy"] = Session("busy", identity_factory, SessionConfig())
        full = [item async for item in host.session({"sdp": await a_valid_offer(),
                                                     "type": "offer"})]
        await host.close()
        return bad, envelope, full

    bad, envelope, full = run(scenario())
    assert len(bad) == 1 and bad[0]["status"] == 400 and "v=0" in bad[0]["error"]
    assert len(envelope) == 1 and envelope[0]["status"] == 400
    assert len(full) == 1 and full[0]["status"] == 503 and full[0]["retry_after"] >= 1


def test_heartbeats_carry_stats_until_the_session_closes():
    class Closing:
        id = "s"
        close_reason = "the video ended"

        def __init__(self):
            self.closed = asyncio.Event()
            self.polls = 0

        def stats(self):
            self.polls += 1
            if self.polls == 2:
                self.closed.set()
            return {"polls": self.polls}

    async def scenario():
        return [item async for item in heartbeats(Closing(), 0.01)]

    assert run(scenario()) == [{"session": "s", "stats": {"polls": 1}},
                               {"session": "s", "stats": {"polls": 2}},
                               {"session": "s", "ended": "the video ended"}]


# ---- with scripted streams -------------------------------------------------------------
def test_a_full_cluster_answers_no_capacity_at_once_without_asking_a_host():
    hosts = FakeHosts(FakeStream(ANSWER), FakeStream(ANSWER))
    server = gateway(hosts, capacity=1)

    async def scenario():
        async with api_client(server.build_app()) as client:
            sdp = await a_valid_offer()
            first = await post(client, sdp)
            started = time.monotonic()
            second = await post(client, sdp)
            return first, second, time.monotonic() - started

    first, (status, body, retry), elapsed = run(scenario())
    assert first[0] == 200 and first[1]["replica"] == "r1"
    assert status == 503 and body == {"error": NO_CAPACITY} and int(retry) >= 1
    assert "no capacity" in NO_CAPACITY and elapsed < 1.0 and len(hosts.offers) == 1


def test_a_lost_host_is_forgotten_at_once_and_its_slot_given_back(caplog):
    lost, after = FakeStream(ANSWER), FakeStream({**ANSWER, "session": "s2"})
    server = gateway(FakeHosts(lost, after), capacity=1)

    async def scenario():
        async with api_client(server.build_app()) as client:
            sdp = await a_valid_offer()
            first = await post(client, sdp)
            lost.fail(RuntimeError("The actor died unexpectedly"))
            await wait_for(lambda: not server.remote, limit_s=2)
            second = await post(client, sdp)
            return first[0], second[0], sorted(server.remote)

    with caplog.at_level(logging.INFO, logger="stages.webrtc.gateway"):
        assert run(scenario()) == (200, 200, ["s2"])
    assert "session s1 on r1: lost: its host failed (RuntimeError)" in caplog.text


def test_a_silent_host_is_taken_as_lost():
    silent = FakeStream(ANSWER)
    server = gateway(FakeHosts(silent), heartbeat_timeout_s=0.2)

    async def scenario():
        async with api_client(server.build_app()) as client:
            await post(client, await a_valid_offer())
            await wait_for(lambda: not server.remote, limit_s=3)

    run(scenario())
    assert silent.cancelled


def test_no_answer_in_time_is_a_503_and_the_request_is_cancelled():
    slow = FakeStream()
    server = gateway(FakeHosts(slow), answer_timeout_s=0.2)

    async def scenario():
        async with api_client(server.build_app()) as client:
            return await post(client, await a_valid_offer())

    status, body, retry = run(scenario())
    assert (status, body) == (503, {"error": NO_HOST_IN_TIME}) and int(retry) >= 1
    assert slow.cancelled and server.remote == {} and server.pending == 0


@pytest.mark.parametrize("stream, expected", [
    (FakeStream(refusal_item(SessionRefusedError(400, "the offer has no video track"))),
     (400, {"error": "the offer has no video track"}, None)),
    (FakeStream(refusal_item(SessionRefusedError(503, "the server is busy", 4))),
     (503, {"error": "the server is busy"}, "4")),
    (FakeStream().finish(), (503, {"error": HOST_LOST}, "2")),  # it ends before answering
    (FakeStream({"what": "else"}), (500, None, None)),
])
def test_what_a_host_answers_instead_of_an_answer_reaches_the_peer(stream, expected):
    server = gateway(FakeHosts(stream))

    async def scenario():
        async with api_client(server.build_app()) as client:
            return await post(client, await a_valid_offer())

    status, body, retry = run(scenario())
    assert status == expected[0] and retry == expected[2]
    if expected[1] is not None:
        assert body == expected[1]
    assert server.remote == {} and server.pending == 0


def test_bad_offers_are_refused_at_the_gateway_before_any_host_is_asked():
    hosts = FakeHosts()
    server = gateway(hosts)

    async def scenario():
        async with api_client(server.build_app()) as client:
            return [(await post(client, sdp))[0] for sdp in ("v=0\r\n", "hello")]

    assert run(scenario()) == [400, 400] and hosts.offers == []


def test_the_pending_budget_bounds_offers_awaiting_their_answer():
    waiting = FakeStream()
    server = gateway(FakeHosts(waiting), capacity=4, max_pending=1)

    async def scenario():
        async with api_client(server.build_app()) as client:
            sdp = await a_valid_offer()
            first = asyncio.create_task(post(client, sdp))
            await wait_for(lambda: server.pending == 1, limit_s=5)
            second = await post(client, sdp)
            waiting.push(ANSWER)
            return (await first)[0], second[0], second[1]["error"]

    first, second, error = run(scenario())
    assert (first, second) == (200, 503) and "connecting other peers" in error


def test_closing_the_gateway_ends_every_session_on_its_host():
    streams = [FakeStream(ANSWER), FakeStream({**ANSWER, "session": "s2"})]
    server = gateway(FakeHosts(*streams))

    async def scenario():
        async with api_client(server.build_app()) as client:
            sdp = await a_valid_offer()
            await post(client, sdp)
            await post(client, sdp)
            await server.close_all()
            return dict(server.remote)

    assert run(scenario()) == {} and all(s.cancelled for s in streams)


def test_the_page_and_its_config_are_served_as_by_a_single_server():
    server = gateway(FakeHosts(), notice="a notice")

    async def scenario():
        async with api_client(server.build_app()) as client:
            page = await client.get("/")
            config = await (await client.get("/api/config")).json()
            return page.status, config["notice"]

    assert run(scenario()) == (200, "a notice")


def test_refusal_items_round_trip():
    refused = SessionRefusedError(503, "busy", 3)
    back = refusal_of(refusal_item(refused))
    assert back is not None and (back.status, back.message, back.retry_after_s) == (503, "busy", 3)
    assert refusal_of(ANSWER) is None
    with pytest.raises(ValueError, match="capacity"):
        GatewayConfig(capacity=0)
