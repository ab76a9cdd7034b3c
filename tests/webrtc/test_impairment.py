"""The user-space bad network: its decisions, its parsing, and a real call through it."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from stages.io import PatternConfig, PatternSource
from stages.webrtc.client import ClientConfig, run_client
from stages.webrtc.impairment import (
    ImpairedLink,
    LinkConditions,
    LinkShaper,
    LinkSpecError,
    parse_link,
)
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.server import ServerConfig, WebRTCServer
from tests.webrtc.peers import ReturnedFrames, api_client


def decisions(conditions: LinkConditions, count: int = 2000, size: int = 1000,
              every_s: float = 0.001) -> list[float | None]:
    shaper = LinkShaper(conditions, start=0.0, stream=0)
    return [shaper.admit(size, i * every_s) for i in range(count)]


def test_the_same_seed_makes_the_same_decisions_and_another_seed_others():
    lossy = LinkConditions(loss=0.05, delay_ms=40, jitter_ms=10, seed=3)
    assert decisions(lossy) == decisions(lossy)
    assert decisions(lossy) != decisions(LinkConditions(loss=0.05, delay_ms=40, jitter_ms=10,
                                                        seed=4))


def test_loss_drops_about_its_share_and_nothing_else():
    outcome = decisions(LinkConditions(loss=0.05, seed=1), count=20000)
    lost = sum(a is None for a in outcome) / len(outcome)
    assert 0.04 < lost < 0.06
    assert all(a == i * 0.001 for i, a in enumerate(outcome) if a is not None)  # no delay


def test_delay_and_jitter_stay_in_their_range_and_reorder_packets():
    shaper = LinkShaper(LinkConditions(delay_ms=40, jitter_ms=10, seed=2), 0.0, 0)
    arrivals = [shaper.admit(1000, i * 0.001) for i in range(1000)]
    delays = [a - i * 0.001 for i, a in enumerate(arrivals) if a is not None]
    assert min(delays) >= 0.030 - 1e-9 and max(delays) <= 0.050 + 1e-9
    assert shaper.stats.reordered > 0  # 1 ms apart with +-10 ms jitter: overtaking happens
    steady = LinkShaper(LinkConditions(delay_ms=40), 0.0, 0)
    [steady.admit(1000, i * 0.001) for i in range(1000)]
    assert steady.stats.reordered == 0


def test_a_rate_cap_serialises_packets_and_drops_what_overflows_its_queue():
    # 1 Mbit/s: a 1,250-byte packet takes 10 ms on the wire; 100 arrive at once.
    shaper = LinkShaper(LinkConditions(rate_kbps=1000, queue_ms=255), 0.0, 0)
    arrivals = [shaper.admit(1250, 0.0) for _ in range(100)]
    delivered = [a for a in arrivals if a is not None]
    assert delivered == pytest.approx([0.01 * (i + 1) for i in range(25)])
    assert shaper.stats.lost_queue == 75


def test_blackouts_lose_everything_inside_their_window_only():
    conditions = LinkConditions(blackouts=((1.0, 0.5),))
    shaper = LinkShaper(conditions, start=10.0, stream=0)
    assert shaper.admit(100, 10.9) is not None
    assert shaper.admit(100, 11.0) is None and shaper.admit(100, 11.49) is None
    assert shaper.admit(100, 11.5) is not None
    window = shaper.black_out(20.0, 3.0)
    assert window == (20.0, 23.0) and shaper.admit(100, 22.0) is None
    assert shaper.stats.lost_blackout == 3


@pytest.mark.parametrize(("text", "expected"), [
    ("clean", LinkConditions()),
    ("loss=2%", LinkConditions(loss=0.02)),
    ("loss=0.05,delay=40ms,jitter=10", LinkConditions(loss=0.05, delay_ms=40, jitter_ms=10)),
    ("rate=1mbit,queue=100ms", LinkConditions(rate_kbps=1000, queue_ms=100)),
    ("rate=300kbit,blackout=10s+3s,blackout=20+1,seed=7",
     LinkConditions(rate_kbps=300, blackouts=((10, 3), (20, 1)), seed=7)),
])
def test_network_descriptions_read_as_written(text, expected):
    assert parse_link(text) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("loss", "cannot read"),
    ("loss=lots", "loss='lots'"),
    ("speed=1mbit", "knows no 'speed'"),
    ("rate=1gbit", "rate='1gbit'"),
    ("loss=100%", "loss must be"),
    ("delay=10ms,jitter=20ms", "jitter must lie"),
    ("blackout=3s", r"START\+LENGTH"),
])
def test_unreadable_network_descriptions_say_what_to_give(text, says):
    with pytest.raises(LinkSpecError, match=says):
        parse_link(text)


def test_describe_reads_back():
    conditions = LinkConditions(loss=0.02, delay_ms=40, jitter_ms=10, rate_kbps=1000,
                                blackouts=((9.0, 3.0),))
    assert parse_link(conditions.describe()) == conditions


def test_a_call_through_loss_and_a_blackout_comes_back_by_itself():
    """A real call (aiortc both ends) over 5 % loss and a 1.5 s blackout both ways.

    Nothing times the recovery here (the benchmark does): the picture must
    come back after the blackout within the call, long before the sender's
    periodic keyframe (3000 frames), so on the receivers' picture-loss requests.
    """
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1",
                                       session=SessionConfig(watchdog_interval_s=0.2)))
    links: list[ImpairedLink] = []
    sink = ReturnedFrames()

    async def scenario():
        async with api_client(server.build_app()) as http:
            config = ClientConfig(server=str(http.make_url("/")), duration_s=6.0,
                                  ice_host="127.0.0.1", drain_s=1.0,
                                  network=parse_link("loss=5%,blackout=2.5s+1.5s,seed=1"))
            source = PatternSource(PatternConfig(width=320, height=240, fps=30))
            return await run_client(config, source, sink, on_link=links.append)

    report = asyncio.run(scenario())
    assert report.network is not None and report.network["sockets"] >= 1
    for side in ("outgoing", "incoming"):
        stats = report.network[side]
        assert stats["lost_random"] > 0 and stats["delivered"] > 0
    assert report.network["outgoing"]["lost_blackout"] > 0
    (begin, end), = links[0].blackouts
    before = [s for t, s in sink.frames if t < begin]
    after = [s for t, s in sink.frames if t >= end and s is not None]
    assert len(before) > 10 and len(after) > 10  # frames before, and readable frames after
    assert not [t for t, _ in sink.frames if begin + 0.2 < t < end]  # the blackout was real
    assert sorted(after) == after and after[0] > max(s for s in before if s is not None)
