"""The playout-delay header extension: its bytes, its negotiation, and packets that carry it."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, unpack_header_extensions

from pipeline.app.commands.serve import parse_playout_delay
from stages.webrtc.aiortc_patches.playout import (
    PLAYOUT_DELAY_URI,
    PlayoutDelay,
    PlayoutDelayExtensionsMap,
    offered_extension_ids,
    request_playout_delay,
)
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.peer_session import SessionConfig, identity_factory
from stages.webrtc.server import ServerConfig, WebRTCServer
from tests.webrtc.peers import (
    TestPeer,
    answering_peer,
    api_client,
    make_answer,
    post_offer,
    wait_for,
)

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
OFFERED_ID = 9  # Chromium picks its own ids; any free one will do
SENDER_MAP = "_RTCRtpSender__rtp_header_extensions_map"


def with_playout_delay(offer_sdp: str, ext_id: int = OFFERED_ID) -> str:
    """``offer_sdp`` with the extension offered in its video section, as Chromium does."""
    lines = offer_sdp.split("\r\n")
    video = next(i for i, line in enumerate(lines) if line.startswith("m=video"))
    lines.insert(video + 1, f"a=extmap:{ext_id} {PLAYOUT_DELAY_URI}")
    return "\r\n".join(lines)


# ---- the value --------------------------------------------------------------------------
def test_the_value_is_two_12_bit_delays_in_10_ms_units():
    assert PlayoutDelay(100, 400).encode() == bytes([0x00, 0xA0, 0x28])
    assert PlayoutDelay().encode() == b"\x00\x00\x00"
    longest = PlayoutDelay(40_950, 40_950)
    assert PlayoutDelay.decode(longest.encode()) == longest


@pytest.mark.parametrize(("low", "high", "message"), [
    (0, 15, "multiple of 10"),
    (-10, 0, "multiple of 10"),
    (0, 40_960, "multiple of 10"),
    (50, 40, "min 50 ms > max 40 ms"),
])
def test_delays_that_cannot_be_carried_are_refused(low, high, message):
    with pytest.raises(ValueError, match=message):
        PlayoutDelay(low, high)


@pytest.mark.parametrize(("text", "expected"), [
    ("0", PlayoutDelay(0, 0)),
    ("100", PlayoutDelay(0, 100)),
    ("20:60", PlayoutDelay(20, 60)),
    ("browser", None),
])
def test_the_serve_flag_reads_a_limit_a_range_or_browser(text, expected):
    assert parse_playout_delay(text) == expected


@pytest.mark.parametrize("text", ["soon", "1:2:3", "15"])
def test_the_serve_flag_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError):
        parse_playout_delay(text)


# ---- the map ------------------------------------------------------------------------------
def parameters(*uris_and_ids: tuple[str, int]) -> RTCRtpParameters:
    return RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri) for uri, ext_id in uris_and_ids
    ])


def test_once_negotiated_every_packet_carries_it_beside_aiortcs_own():
    mapping = PlayoutDelayExtensionsMap(PlayoutDelay(0, 100))
    mapping.configure(parameters((MID_URI, 1), (PLAYOUT_DELAY_URI, OFFERED_ID)))
    profile, data = mapping.set(HeaderExtensions(mid="0"))
    assert unpack_header_extensions(profile, data) == [(1, b"0"), (OFFERED_ID, b"\x00\x00\x0a")]


def test_not_negotiated_the_packets_are_aiortcs():
    mapping = PlayoutDelayExtensionsMap(PlayoutDelay())
    mapping.configure(parameters((MID_URI, 1)))
    plain = HeaderExtensionsMap()
    plain.configure(parameters((MID_URI, 1)))
    values = HeaderExtensions(mid="0")
    assert mapping.set(values) == plain.set(values)
    assert mapping.set(HeaderExtensions()) == plain.set(HeaderExtensions())


# ---- negotiation ------------------------------------------------------------------------
async def answer_to(offer_sdp: str, delay: PlayoutDelay) -> tuple[int, str, RTCPeerConnection]:
    pc = await answering_peer(offer_sdp)
    done = request_playout_delay(pc, offer_sdp, delay)
    return done, await make_answer(pc), pc


def test_an_offered_extension_is_answered_with_the_offers_id():
    async def scenario():
        offerer = TestPeer()
        offer = with_playout_delay(await offerer.offer())
        done, answer, pc = await answer_to(offer, PlayoutDelay())
        sender_map = getattr(pc.getTransceivers()[0].sender, SENDER_MAP)
        await pc.close()
        await offerer.close()
        return offer, done, answer, sender_map

    offer, done, answer, sender_map = asyncio.run(scenario())
    assert list(offered_extension_ids(offer).values()) == [OFFERED_ID]
    assert done == 1
    assert f"a=extmap:{OFFERED_ID} {PLAYOUT_DELAY_URI}" in answer
    assert isinstance(sender_map, PlayoutDelayExtensionsMap)


def test_a_peer_that_does_not_offer_it_is_left_alone():
    async def scenario():
        offerer = TestPeer()
        offer = await offerer.offer()  # aiortc itself does not offer it
        done, answer, pc = await answer_to(offer, PlayoutDelay())
        sender_map = getattr(pc.getTransceivers()[0].sender, SENDER_MAP)
        await pc.close()
        await offerer.close()
        return done, answer, sender_map

    done, answer, sender_map = asyncio.run(scenario())
    assert done == 0
    assert PLAYOUT_DELAY_URI not in answer
    assert type(sender_map) is HeaderExtensionsMap


# ---- a served session ----------------------------------------------------------------------
class RecordingMap(HeaderExtensionsMap):
    """A receiving transport's map that also keeps every packet's raw extensions."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[tuple[int, bytes]]] = []

    def get(self, extension_profile: int, extension_value: bytes) -> HeaderExtensions:
        self.seen.append(unpack_header_extensions(extension_profile, extension_value))
        return super().get(extension_profile, extension_value)


@pytest.mark.parametrize(("flag", "expected"), [("50", b"\x00\x00\x05"), ("browser", None)])
def test_a_session_sends_the_delay_it_is_configured_with(flag, expected):
    session = SessionConfig(playout_delay=parse_playout_delay(flag))
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=session), identity_factory)

    async def scenario():
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                peer = TestPeer()
                offer = with_playout_delay(await peer.offer())
                recorder = RecordingMap()
                transport = peer.pc.getTransceivers()[0].receiver.transport
                transport._rtp_header_extensions_map = recorder
                reply = await post_offer(client, peer, offer)
                await asyncio.wait_for(peer.got_frame.wait(), 30)
                await wait_for(lambda: len(recorder.seen) >= 5)
                await peer.close()
                await wait_for(lambda: not server.sessions)
                return reply["sdp"], recorder.seen

    answer, seen = asyncio.run(scenario())
    carried = [dict(extensions).get(OFFERED_ID) for extensions in seen if extensions]
    assert carried
    if expected is None:
        assert PLAYOUT_DELAY_URI not in answer
        assert set(carried) == {None}
    else:
        assert f"a=extmap:{OFFERED_ID} {PLAYOUT_DELAY_URI}" in answer
        assert set(carried) == {expected}
