"""Bad offers are refused before any session work, with fixed reasons, and free their slot."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from pipeline.stage import Stage
from stages.reenact.live_settings import LiveSettingsBox
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.offers import (
    DECODABLE_CODECS,
    SUPPORTED_FINGERPRINT_HASHES,
    OfferError,
    check_offer,
)
from stages.webrtc.peer_session import identity_factory
from stages.webrtc.server import OFFER_FAILED, ServerConfig, WebRTCServer
from tests.webrtc.peers import TestPeer, api_client

LIMIT = 64 * 1024
EXCEPTION_TEXT = re.compile(r"Error|Exception|Traceback|File \"|line \d|\\u|\\x")


class CountingFactory:
    """A `StageFactory` that counts its calls and can fail like a broken engine would."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, settings: LiveSettingsBox) -> list[Stage]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("engine file /secret/path.plan is corrupt")
        return identity_factory(settings)


def good_offer(channels: int = 0) -> str:
    """A real aiortc offer (one video section, loopback candidates only).

    ``channels`` data channels make its one ``application`` section.
    """
    async def make() -> str:
        with ice_host_addresses(["127.0.0.1"]):
            peer = TestPeer()
            for i in range(channels):
                peer.pc.createDataChannel(f"channel{i}")
            try:
                return await peer.offer()
            finally:
                await peer.close()

    return asyncio.run(make())


@pytest.fixture(scope="module")
def offer() -> str:
    return good_offer()


@pytest.fixture(scope="module")
def offer_with_channel() -> str:
    return good_offer(channels=1)


def video_section(sdp: str) -> str:
    return sdp[sdp.index("m=video"):]


def application_section(sdp: str) -> str:
    start = sdp.index("m=application")
    end = sdp.find("m=", start + 1)
    return sdp[start:] if end < 0 else sdp[start:end]


def audio_section(sdp: str, codec: str) -> str:
    """The video section as an audio one (its own mid) whose codecs are all ``codec``."""
    audio = video_section(sdp).replace("m=video", "m=audio").replace("a=mid:0", "a=mid:7")
    return re.sub(r"(a=rtpmap:\d+ )\S+", rf"\g<1>{codec}", audio)


def without(sdp: str, prefix: str | tuple[str, ...]) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(prefix))


def renamed_hashes(sdp: str, name: str) -> str:
    return re.sub(r"a=fingerprint:\S+", f"a=fingerprint:{name}", sdp)


BAD_OFFERS = {
    "duplicated video section": (lambda s: s + video_section(s), "more than 1 video"),
    "repeated mid": (lambda s: s + video_section(s).replace("m=video", "m=audio"), "a=mid"),
    "lone surrogate": (lambda s: s.replace("s=-", "s=\ud800"), "not valid UTF-8"),
    "no fingerprint": (lambda s: without(s, "a=fingerprint:"), "no DTLS fingerprint"),
    "unsupported fingerprint hash": (lambda s: renamed_hashes(s, "md5"), "sha-256"),
    "no video": (lambda s: s.replace("m=video", "m=audio"), "no video"),
    "no ice password": (lambda s: without(s, "a=ice-pwd:"), "ice-pwd"),
    "garbage": (lambda s: "v=0\r\n" + "\x00\x7f garbage \x01" * 40, "no video"),
    "no decodable video codec": (lambda s: re.sub(r"(a=rtpmap:\d+ )(VP8|H264)/", r"\1VP9/", s),
                                 "no codec this server can decode; send VP8 or H264"),
    "no decodable audio codec": (lambda s: s + audio_section(s, "speex/16000"),
                                 "audio uses no codec"),
    "video not sent": (lambda s: s.replace("a=sendrecv", "a=recvonly"), "does not send"),
    "payload type not a number": (lambda s: re.sub(r"(m=video \d+ \S+) \d+", r"\1 x", s),
                                  "could not be parsed"),
}


@pytest.mark.parametrize("case", sorted(BAD_OFFERS))
def test_bad_offers_are_refused_by_the_check(offer, case):
    mutate, reason = BAD_OFFERS[case]
    with pytest.raises(OfferError, match=re.escape(reason)):
        check_offer(mutate(offer), LIMIT)


CHANNEL_OFFERS = {
    # A second application section, even under another mid, is refused.
    "two data channel sections": (
        lambda s: s + application_section(s).replace("a=mid:1", "a=mid:9"),
        "more than 1 application"),
    "data channel not over DTLS": (
        lambda s: s.replace("UDP/DTLS/SCTP", "UDP/SCTP"), "not SCTP over DTLS"),
}


@pytest.mark.parametrize("case", sorted(CHANNEL_OFFERS))
def test_bad_data_channel_sections_are_refused(offer_with_channel, case):
    mutate, reason = CHANNEL_OFFERS[case]
    with pytest.raises(OfferError, match=re.escape(reason)):
        check_offer(mutate(offer_with_channel), LIMIT)


def test_one_data_channel_section_passes_the_check(offer_with_channel):
    # aiortc offers however many channels in one section, as browsers do.
    assert offer_with_channel.count("m=application") == 1
    assert good_offer(channels=2).count("m=application") == 1
    check_offer(offer_with_channel, LIMIT)


def test_a_good_offer_passes_the_check(offer):
    check_offer(offer, LIMIT)
    check_offer(offer.replace("a=fingerprint:sha-256", "a=fingerprint:SHA-256"), LIMIT)


def test_a_session_level_fingerprint_and_credentials_serve_every_section(offer):
    kinds = ("a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:")
    moved = [line for line in offer.splitlines(keepends=True) if line.startswith(kinds)]
    head, media = offer.split("m=video", 1)
    check_offer(head + "".join(moved) + "m=video" + without(media, kinds), LIMIT)


def test_an_offer_with_one_decodable_codec_passes(offer):
    only_h264 = re.sub(r"a=rtpmap:(\d+) VP8/", r"a=rtpmap:\1 VP9/", offer)
    check_offer(only_h264, LIMIT)
    check_offer(offer + audio_section(offer, "opus/48000/2"), LIMIT)


def test_the_decodable_codecs_are_aiortcs():
    from aiortc.codecs import CODECS

    for kind, codecs in CODECS.items():
        names = {(c.mimeType.split("/")[1].lower(), c.clockRate) for c in codecs}
        assert names - {("rtx", 90000)} == DECODABLE_CODECS[kind]


def test_the_supported_hashes_are_aiortcs():
    from aiortc.rtcdtlstransport import X509_DIGEST_ALGORITHMS

    assert set(X509_DIGEST_ALGORITHMS) == SUPPORTED_FINGERPRINT_HASHES


# ---- through the server -----------------------------------------------------------------
def post(server: WebRTCServer, body: bytes) -> tuple[int, dict]:
    """POST ``body`` as an offer; the status and the JSON reply."""
    async def scenario() -> tuple[int, dict]:
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                response = await client.post("/api/offer", data=body,
                                             headers={"Content-Type": "application/json"})
                return response.status, await response.json()

    return asyncio.run(scenario())


def offer_body(sdp: str) -> bytes:
    # ensure_ascii writes a lone surrogate as the escape "\ud800", as a browser's JSON would.
    return json.dumps({"sdp": sdp, "type": "offer"}).encode()


def assert_fixed_refusal(status: int, reply: dict, reason: str) -> None:
    assert status == 400, reply
    assert reason in reply["error"]
    assert not EXCEPTION_TEXT.search(reply["error"]), reply["error"]


def assert_refused_before_any_session(bad_offer: str, reason: str) -> None:
    factory = CountingFactory()
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1"), factory)
    status, reply = post(server, offer_body(bad_offer))
    assert_fixed_refusal(status, reply, reason)
    assert server.sessions == {} and factory.calls == 0


@pytest.mark.parametrize("case", sorted(BAD_OFFERS))
def test_bad_offers_get_a_fixed_400_and_build_nothing(offer, case):
    mutate, reason = BAD_OFFERS[case]
    assert_refused_before_any_session(mutate(offer), reason)


def test_an_offer_aiortc_refuses_frees_its_session_and_builds_no_pipeline(offer):
    # Passes the text checks; aiortc refuses it in setRemoteDescription.
    factory = CountingFactory()
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1"), factory)
    status, reply = post(server, offer_body(without(offer, "a=rtcp-mux")))
    assert_fixed_refusal(status, reply, "the offer could not be negotiated")
    assert "rtcp" not in reply["error"].lower()  # aiortc's own words stay in the log
    assert server.sessions == {} and factory.calls == 0


def test_an_unexpected_failure_is_a_fixed_500_logged_with_its_traceback(offer, caplog):
    factory = CountingFactory(fail=True)
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1"), factory)
    with caplog.at_level(logging.ERROR, logger="stages.webrtc.server"):
        status, reply = post(server, offer_body(offer))
    assert (status, reply) == (500, {"error": OFFER_FAILED})
    assert server.sessions == {} and factory.calls == 1
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert logged and "corrupt" in str(logged[0].exc_info[1])


@pytest.mark.parametrize("case", sorted(CHANNEL_OFFERS))
def test_bad_data_channel_sections_get_a_fixed_400(offer_with_channel, case):
    mutate, reason = CHANNEL_OFFERS[case]
    assert_refused_before_any_session(mutate(offer_with_channel), reason)


def test_an_offer_with_a_data_channel_is_answered_with_one(offer_with_channel):
    factory = CountingFactory()
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1"), factory)

    async def scenario() -> tuple[int, dict]:
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                response = await client.post("/api/offer", data=offer_body(offer_with_channel))
                reply = await response.json()
                await client.delete(f"/api/sessions/{reply.get('session')}")
                return response.status, reply

    status, reply = asyncio.run(scenario())
    assert status == 200 and reply["sdp"].count("m=application") == 1
    assert "UDP/DTLS/SCTP" in reply["sdp"] and factory.calls == 1


def test_a_good_offer_is_answered_and_the_pipeline_built_once(offer):
    factory = CountingFactory()
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1"), factory)

    async def scenario() -> tuple[int, dict, int]:
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                response = await client.post("/api/offer", data=offer_body(offer))
                reply = await response.json()
                in_use = len(server.sessions)
                await client.delete(f"/api/sessions/{reply.get('session')}")
                return response.status, reply, in_use

    status, reply, in_use = asyncio.run(scenario())
    assert status == 200 and reply["type"] == "answer" and "a=fingerprint:" in reply["sdp"]
    assert in_use == 1 and factory.calls == 1 and server.sessions == {}
