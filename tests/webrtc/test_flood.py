"""A short flood of offers from many addresses through the real server (counts, not timings)."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from benchmarks.flood import BenchPeer, FloodBenchConfig, FloodReport, call, flood
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.test_offers import CountingFactory

FLOOD = FloodBenchConfig(seconds=1.5, rate_per_s=200.0, addresses=60, width=160, height=120)
CONNECT_S = 2.0


async def copied_offer() -> str:
    peer = BenchPeer(FLOOD.camera)
    try:
        return await peer.offer()
    finally:
        await peer.close()


async def scenario(base: str, port: int) -> tuple[FloodReport, int, int, int, dict]:
    """A live peer, a flood, then a late peer; the flood's report, the live peer's frames
    before and during the flood, its stats' status after it, and the late peer's answer."""
    with ice_host_addresses(["127.0.0.1"]):
        live, late = BenchPeer(FLOOD.camera), BenchPeer(FLOOD.camera)
        try:
            async with aiohttp.ClientSession() as http:
                session = (await call(http, base, live))["session"]
                await asyncio.wait_for(live.first_frame.wait(), 30)
                offer = await copied_offer()
                before = len(live.arrivals)
                report = await flood("127.0.0.1", port, offer, FLOOD)
                during = len(live.arrivals) - before
                async with http.get(f"{base}/api/sessions/{session}/stats") as stats:
                    alive = stats.status
                answered = await call(http, base, late, give_up_s=30)
                await asyncio.wait_for(late.first_frame.wait(), 30)
            return report, before, during, alive, answered
        finally:
            await live.close()
            await late.close()


def test_a_flood_from_many_addresses_is_refused_and_the_live_session_goes_on():
    factory = CountingFactory()
    config = ServerConfig(port=0, ice_host="127.0.0.1", max_pending=2,
                          session=SessionConfig(connect_timeout_s=CONNECT_S))
    server = WebRTCServer(config, factory)
    with ServerThread(server) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        report, before, during, alive, late = asyncio.run(scenario(url.rstrip("/"), port))
    statuses = report.statuses()
    assert report.sent == 300 and sum(statuses.values()) == 300
    assert set(statuses) <= {"200", "400", "429", "503"}, statuses  # never a 500, never silence
    assert statuses["503"] > 0 and report.retry_after_missing == 0
    # Only copied offers that pass every check are admitted, at most the pending budget at a
    # time, each for the connect timeout.
    rounds = 1 + math.floor((report.answered - report.started) / CONNECT_S)
    assert 1 <= statuses["200"] <= config.max_pending * rounds
    assert set(report.by_kind["copied"]) >= {"200"}
    assert factory.calls == 1 + statuses["200"] + 1  # the live peer, the admitted, the late one
    assert before > 0 and during > 0 and alive == 200  # the live session went on
    assert late["session"]  # and the peer after the flood was served


def test_the_flood_bench_is_registered_and_its_helpers_count_right():
    from benchmarks import entry
    from benchmarks.flood import max_gap_ms, source_addresses, window_fps
    from benchmarks.registry import BENCHMARKS

    assert BENCHMARKS["flood"].load() is entry.flood
    addresses = source_addresses(300)
    assert addresses[:2] == ["127.0.0.2", "127.0.0.3"] and len(set(addresses)) == 300
    assert not [a for a in addresses if a.endswith((".0", ".255"))]
    times = [0.1, 0.2, 0.3, 1.5]
    assert window_fps(times, 0.0, 1.0) == 3.0
    assert max_gap_ms(times, 0.0, 2.0) == 1200.0
