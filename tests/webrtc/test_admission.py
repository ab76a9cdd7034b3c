"""Admission under floods: a global budget of pending sessions, slots given back on time."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from benchmarks.flood import never_connecting, source_addresses
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.security import RateLimiter
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.peers import api_client, wait_for
from tests.webrtc.test_offers import CountingFactory, good_offer


class ManualTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dead_offer() -> str:
    """A real offer whose peer is unreachable: it passes every check and never connects."""
    return never_connecting(good_offer())


async def offer_from(source: str, base: str, sdp: str) -> tuple[int, str | None]:
    """POST ``sdp`` from the loopback address ``source``; the status and ``Retry-After``."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    body = {"sdp": sdp, "type": "offer"}
    async with aiohttp.ClientSession(connector=connector) as http, \
            http.post(f"{base}/api/offer", json=body) as response:
        await response.read()
        return response.status, response.headers.get("Retry-After")


def test_the_pending_budget_refuses_offers_from_many_addresses(dead_offer):
    factory = CountingFactory()
    # One offer per address and slots to spare: only the pending budget can refuse.
    config = ServerConfig(port=0, ice_host="127.0.0.1", max_sessions=16, max_pending=2,
                          session=SessionConfig(connect_timeout_s=30.0))
    server = WebRTCServer(config, factory)

    async def scenario(base: str) -> list[tuple[int, str | None]]:
        return [await offer_from(source, base, dead_offer) for source in source_addresses(8)]

    thread = ServerThread(server)
    with thread as url:
        answers = asyncio.run(scenario(url.rstrip("/")))
        held = thread.call(lambda: len(server.sessions))
    assert [status for status, _ in answers] == [200, 200] + [503] * 6
    assert all(after and 1 <= int(after) <= 30 for _, after in answers[2:])  # a deadline
    assert factory.calls == 2 and held == 2


def test_the_session_limit_answers_503_with_retry_after(dead_offer):
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", max_sessions=1, max_pending=4))

    async def scenario() -> list[tuple[int, str | None]]:
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                out = []
                for _ in range(2):
                    response = await client.post("/api/offer",
                                                 json={"sdp": dead_offer, "type": "offer"})
                    out.append((response.status, response.headers.get("Retry-After")))
                await server.close_all()
                return out

    (first, _), (second, after) = asyncio.run(scenario())
    assert (first, second) == (200, 503) and after is not None and int(after) >= 1


def test_a_never_connecting_session_frees_its_slot_at_the_connect_deadline(dead_offer):
    # The watchdog's interval is far longer than the timeout: only the deadline wake frees it.
    session = SessionConfig(connect_timeout_s=0.5, watchdog_interval_s=60.0)
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", max_pending=1, session=session))

    async def scenario() -> tuple[list[int], str | None]:
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                body = {"sdp": dead_offer, "type": "offer"}
                statuses = [(await client.post("/api/offer", json=body)).status for _ in range(2)]
                (held,) = server.sessions.values()
                await wait_for(lambda: not server.sessions, limit_s=20.0)
                statuses.append((await client.post("/api/offer", json=body)).status)
                await server.close_all()
                return statuses, held.close_reason

    statuses, reason = asyncio.run(scenario())
    assert statuses == [200, 503, 200]  # the slot came back for the next peer
    assert reason == "no video within 0.5 s"


def test_by_default_a_never_connecting_peer_holds_its_slot_under_5_s():
    # The timeout runs from the answer; the close after it takes milliseconds.
    assert SessionConfig().connect_timeout_s <= 4.0
    assert ServerConfig().max_pending < ServerConfig().max_sessions


@pytest.mark.parametrize("bad", [{"max_pending": 0}, {"max_sessions": 0}])
def test_admission_limits_must_be_positive(bad):
    with pytest.raises(ValueError, match="must be >= 1"):
        ServerConfig(**bad)


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan")])
def test_the_connect_timeout_must_be_positive(seconds):
    with pytest.raises(ValueError, match="connect timeout"):
        SessionConfig(connect_timeout_s=seconds)


def test_the_rate_limiter_forgets_what_a_flood_left_once_refilled():
    clock = ManualTime()
    limiter = RateLimiter(1.0, 2, clock=clock, sweep_s=30.0)
    for i in range(500):
        limiter.check(f"127.0.{i // 250}.{i % 250 + 1}")
    assert limiter.tracked() == 500
    clock.now += 31.0  # every bucket refilled, a sweep is due
    assert limiter.check("127.0.0.1") == 0.0
    assert limiter.tracked() == 1


def serve_config_of(*flags: str) -> ServerConfig:
    from pipeline.app.cli import build_parser
    from pipeline.app.commands.serve import server_config

    return server_config(build_parser().parse_args(["serve", "--identity", *flags]))


def test_serve_takes_the_pending_budget_and_the_connect_timeout():
    from pipeline.errors import UserError

    default = serve_config_of()
    assert (default.max_pending, default.session.connect_timeout_s) == (2, 4.0)
    chosen = serve_config_of("--max-pending", "3", "--connect-timeout", "12")
    assert (chosen.max_pending, chosen.session.connect_timeout_s) == (3, 12.0)
    for flags in (("--max-pending", "0"), ("--connect-timeout", "0")):
        with pytest.raises(UserError):
            serve_config_of(*flags)
