"""The floor under the upload bandwidth reported to a peer, and the suggested start bitrate."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from aiortc import RTCPeerConnection
from aiortc.rate import RemoteBitrateEstimator

from stages.webrtc.aiortc_patches.bandwidth import (
    START_BITRATE_PARAM,
    FlooredBitrateEstimator,
    install_remb_floor,
    suggest_start_bitrate,
)
from stages.webrtc.aiortc_patches.encoder import SteadyVp8Encoder
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

ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
ENCODER = "_RTCRtpSender__encoder"


def reports(estimator: RemoteBitrateEstimator, kbps: int, seconds: float = 6.0) -> list[int]:
    """The REMB bitrates ``estimator`` reports for a steady ``kbps`` stream of 1000-byte packets."""
    size, t, out = 1000, 0.0, []
    gap = size * 8 / (kbps * 1000)
    while t < seconds:
        report = estimator.add(arrival_time_ms=int(1000 + t * 1000),
                               abs_send_time=int(t * (1 << 18)) & 0xFFFFFF,
                               payload_size=size, ssrc=1)
        if report is not None:
            out.append(report[0])
        t += gap
    return out


def test_a_low_estimate_is_reported_as_the_floor():
    plain = reports(RemoteBitrateEstimator(), kbps=80)
    floored_estimator = FlooredBitrateEstimator(300_000)
    floored = reports(floored_estimator, kbps=80)
    # aiortc's own: about 1.5 x what arrives, far under the floor.
    assert plain and max(plain) < 300_000
    assert floored == [300_000] * len(plain)
    assert floored_estimator.raised == len(plain)


def test_an_estimate_above_the_floor_is_reported_as_it_is():
    assert reports(FlooredBitrateEstimator(300_000), kbps=2000) == reports(
        RemoteBitrateEstimator(), kbps=2000)


def test_a_floor_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        FlooredBitrateEstimator(0)
    with pytest.raises(ValueError, match="positive"):
        suggest_start_bitrate(RTCPeerConnection(), 0)


async def negotiate(start_kbps: int | None = None):
    """Answer a `TestPeer`'s offer; returns (floors installed, codecs given a start, answer, pc)."""
    offerer = TestPeer()
    pc = await answering_peer(await offerer.offer())
    floors = install_remb_floor(pc, 300_000)
    started = 0 if start_kbps is None else suggest_start_bitrate(pc, start_kbps)
    answer = await make_answer(pc)
    await offerer.close()
    return floors, started, answer, pc


def test_the_video_receiver_gets_the_floored_estimator():
    async def scenario():
        floors, _, _, pc = await negotiate()
        estimator = getattr(pc.getTransceivers()[0].receiver, ESTIMATOR)
        again = install_remb_floor(pc, 300_000)  # idempotent
        await pc.close()
        return floors, estimator, again

    floors, estimator, again = asyncio.run(scenario())
    assert floors == again == 1
    assert isinstance(estimator, FlooredBitrateEstimator) and estimator.floor_bps == 300_000


def test_the_answer_suggests_the_start_bitrate_for_video_codecs_only():
    async def scenario():
        _, started, answer, pc = await negotiate(start_kbps=1000)
        await pc.close()
        _, _, plain, pc = await negotiate()
        await pc.close()
        return started, answer, plain

    started, answer, plain = asyncio.run(scenario())
    fmtp = [line for line in answer.splitlines() if START_BITRATE_PARAM in line]
    assert started >= 1 and len(fmtp) == started
    assert all(f"{START_BITRATE_PARAM}=1000" in line for line in fmtp)
    assert not any("apt=" in line for line in fmtp)  # retransmission codecs untouched
    assert START_BITRATE_PARAM not in plain


@pytest.mark.parametrize(("floor", "start"), [(300_000, 1000), (None, None)])
def test_a_session_applies_its_configuration(floor, start):
    session = SessionConfig(min_remb_bps=floor, start_bitrate_kbps=start)
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=session), identity_factory)

    async def scenario():
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                peer = TestPeer()
                reply = await post_offer(client, peer)
                await asyncio.wait_for(peer.got_frame.wait(), 30)
                pc = server.sessions[reply["session"]]._pc
                assert pc is not None
                estimator = getattr(pc.getTransceivers()[0].receiver, ESTIMATOR)
                encoder = getattr(pc.getTransceivers()[0].sender, ENCODER)
                await peer.close()
                await wait_for(lambda: not server.sessions)
                return reply["sdp"], estimator, encoder

    answer, estimator, encoder = asyncio.run(scenario())
    assert isinstance(encoder, SteadyVp8Encoder)  # the avatar went out through it
    if floor is None:
        assert type(estimator) is RemoteBitrateEstimator
        assert START_BITRATE_PARAM not in answer
    else:
        assert isinstance(estimator, FlooredBitrateEstimator) and estimator.floor_bps == floor
        assert f"{START_BITRATE_PARAM}={start}" in answer
