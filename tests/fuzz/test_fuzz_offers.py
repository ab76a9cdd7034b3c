"""Fuzzing offers: `check_offer` alone, and the real server's ``/api/offer`` beside a live
session. Every offer gets a fixed 4xx reason or an answer, never a 500, and the live
session keeps its video."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("aiortc")

from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.offers import OfferError, check_offer
from stages.webrtc.peer_session import identity_factory
from stages.webrtc.server import ServerConfig, WebRTCServer
from tests.fuzz import sdp, tally
from tests.fuzz.profiles import budget, case_timeout_s
from tests.webrtc.peers import TestPeer, post_offer

LIMIT = 64 * 1024
CASE_S = 10.0
INTERNAL_TEXT = re.compile(r"Traceback|File \"|line \d+,|\w+Error\b|\w+Exception\b|0x[0-9a-f]{6}")


def assert_fixed(message: str, offer: str) -> None:
    """A reason for the peer's user: short, and no internals (media kinds may be echoed)."""
    kinds = {m.split(" ")[0] for m in re.findall(r"^m=(\S*)", offer, re.MULTILINE)}
    text = message
    for kind in kinds - {""}:
        text = text.replace(kind, "")
    assert message and len(message) < 400, message
    assert not INTERNAL_TEXT.search(text), message


@budget(ci=200, fuzz=3000)
@given(offer=sdp.any_offer())
def test_check_offer_refuses_with_a_fixed_reason_or_passes(offer):
    try:
        check_offer(offer, LIMIT)
    except OfferError as exc:
        assert_fixed(str(exc), offer)
        tally.count("offers.check_offer", "refused")
    else:
        tally.count("offers.check_offer", "passed")


# ---- through the server ----------------------------------------------------------------------
class Errors(logging.Handler):
    """Keeps the last exception the server logged (shown when a case gets a 500)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.last = record.exc_info[1]


class OfferServer:
    """A `WebRTCServer` (no rate limits) on a loop kept across cases, with one live peer."""

    def __init__(self) -> None:
        self.ice = ice_host_addresses(["127.0.0.1"])
        self.ice.__enter__()
        self.runner = asyncio.Runner()
        config = ServerConfig(ice_host="127.0.0.1", max_sessions=64, api_rate_per_s=1e9,
                              api_burst=10**9, offer_rate_per_s=1e9, offer_burst=10**9)
        self.server = WebRTCServer(config, identity_factory)
        self.errors = Errors()
        logging.getLogger("stages.webrtc.server").addHandler(self.errors)
        self.client, self.peer, self.live = self.runner.run(self._start())

    async def _start(self):
        client = TestClient(TestServer(self.server.build_app()))
        await client.start_server()
        peer = TestPeer()
        reply = await post_offer(client, peer)
        return client, peer, reply["session"]

    def post(self, body: bytes) -> tuple[int, dict]:
        self.errors.last = None
        return self.runner.run(asyncio.wait_for(self._post(body), CASE_S))

    async def _post(self, body: bytes) -> tuple[int, dict]:
        response = await self.client.post("/api/offer", data=body,
                                          headers={"Content-Type": "application/json"})
        reply = await response.json(content_type=None)
        if response.status == 200:
            await self.client.delete(f"/api/sessions/{reply['session']}")
        return response.status, reply

    def live_video_flows(self) -> bool:
        self.peer.got_frame.clear()
        wait = asyncio.wait_for(self.peer.got_frame.wait(), 10)
        return self.runner.run(wait) is True

    def close(self) -> None:
        logging.getLogger("stages.webrtc.server").removeHandler(self.errors)
        self.runner.run(self.peer.close())
        self.runner.run(self.client.close())
        self.runner.close()
        self.ice.__exit__(None, None, None)


@pytest.fixture(scope="module")
def offer_server():
    server = OfferServer()
    yield server
    server.close()


def bodies() -> st.SearchStrategy[tuple[bytes, str]]:
    """``(request body, the offer in it)``: JSON offers, odd JSON, and raw bytes."""
    as_json = sdp.any_offer().map(lambda o: (json.dumps({"sdp": o, "type": "offer"}).encode(), o))
    values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
    odd = st.fixed_dictionaries({"sdp": values, "type": st.just("offer") | values})
    raw = st.binary(max_size=2048).map(lambda b: (b, ""))
    return st.one_of(as_json, as_json, as_json, odd.map(lambda d: (json.dumps(d).encode(), "")),
                     raw)


@pytest.mark.timeout(case_timeout_s(ci=180, fuzz=1800))
@budget(ci=60, fuzz=1000)
@given(case=bodies())
def test_the_offer_route_answers_4xx_with_a_fixed_reason(offer_server, case):
    body, offer = case
    status, reply = offer_server.post(body)
    tally.count("offers.route", str(status))
    assert status == 200 or 400 <= status < 500, (status, reply, offer_server.errors.last)
    if status != 200:
        assert_fixed(reply["error"], offer)


def test_the_live_session_kept_its_video_through_the_fuzzing(offer_server):
    assert offer_server.live in offer_server.server.sessions
    assert set(offer_server.server.sessions) == {offer_server.live}  # nothing leaked
    assert offer_server.live_video_flows()


def _offer_without_the_video_mid() -> str:
    return sdp.SEED_OFFERS["video-channel.sdp"].replace("a=mid:0\r\n", "", 1)


def test_an_offer_aiortc_cannot_answer_gets_400_not_500(offer_server):
    body = json.dumps({"sdp": _offer_without_the_video_mid(), "type": "offer"}).encode()
    status, reply = offer_server.post(body)
    assert status == 400, (status, reply)
