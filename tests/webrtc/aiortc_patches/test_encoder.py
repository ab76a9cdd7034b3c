"""The returned video's VP8 bitrate policy: down at once, up in large steps."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from aiortc.codecs.vpx import MAX_BITRATE, MIN_BITRATE, Vp8Encoder

from stages.webrtc.aiortc_patches.encoder import (
    SinkVp8Encoder,
    SteadyVp8Encoder,
    install_sink_encoder,
    install_steady_encoder,
)
from tests.webrtc.peers import TestPeer, answering_peer

SENDER_ENCODER = "_RTCRtpSender__encoder"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def restarts_over_a_ramp(encoder: Vp8Encoder, clock: Clock, start: int, stop: int,
                         per_second: float) -> int:
    """Encoder restarts while reports rise ``per_second`` a second, 4 reports a second.

    A restart is aiortc's rule in ``Vp8Encoder.encode``: the target is more
    than 10% away from the bitrate the running encoder was made with.
    """
    restarts, bitrate, running = 0, float(start), encoder.target_bitrate
    while bitrate < stop:
        encoder.target_bitrate = int(bitrate)
        if abs(encoder.target_bitrate - running) / running > 0.1:
            restarts, running = restarts + 1, encoder.target_bitrate
        clock.now += 0.25
        bitrate *= per_second**0.25
    return restarts


def test_a_browsers_ramp_restarts_the_encoder_a_few_times_not_every_ten_percent():
    steady_clock = Clock()
    steady = SteadyVp8Encoder(clock=steady_clock)
    plain = restarts_over_a_ramp(Vp8Encoder(), Clock(), 500_000, MAX_BITRATE, per_second=1.08)
    fewer = restarts_over_a_ramp(steady, steady_clock, 500_000, MAX_BITRATE, per_second=1.08)
    assert plain >= 10  # 500 kbps -> 1.5 Mbps in 10% steps
    assert 2 <= fewer <= 4
    assert steady.target_bitrate >= MAX_BITRATE / 1.5


def test_lower_reports_apply_at_once():
    clock = Clock()
    encoder = SteadyVp8Encoder(clock=clock)
    encoder.target_bitrate = 1_000_000  # +100%: a large step applies at once
    assert encoder.target_bitrate == 1_000_000
    encoder.target_bitrate = 700_000
    assert encoder.target_bitrate == 700_000
    encoder.target_bitrate = 10_000
    assert encoder.target_bitrate == MIN_BITRATE  # aiortc's bounds still hold


def test_a_small_rise_waits_until_it_has_held():
    clock = Clock()
    encoder = SteadyVp8Encoder(raise_step=0.5, hold_s=5.0, clock=clock)
    start = encoder.target_bitrate
    encoder.target_bitrate = int(start * 1.2)
    clock.now += 4.9
    encoder.target_bitrate = int(start * 1.2)
    assert encoder.target_bitrate == start
    clock.now += 0.2
    encoder.target_bitrate = int(start * 1.2)
    assert encoder.target_bitrate == int(start * 1.2)
    # A report back at the target ends the wait: the next rise waits afresh.
    encoder.target_bitrate = encoder.target_bitrate
    encoder.target_bitrate = int(start * 1.3)
    clock.now += 4.0
    encoder.target_bitrate = int(start * 1.3)
    assert encoder.target_bitrate == int(start * 1.2)


@pytest.mark.parametrize(("raise_step", "hold_s"), [(0.1, 5.0), (0.5, 0.0)])
def test_settings_that_would_not_steady_anything_are_refused(raise_step, hold_s):
    with pytest.raises(ValueError):
        SteadyVp8Encoder(raise_step=raise_step, hold_s=hold_s)


def test_a_vp8_sender_gets_the_steady_encoder_before_its_first_frame():
    async def scenario():
        offerer = TestPeer()
        pc = await answering_peer(await offerer.offer())
        done = install_steady_encoder(pc)
        again = install_steady_encoder(pc)
        transceiver = pc.getTransceivers()[0]
        codec = transceiver._codecs[0].mimeType
        encoder = getattr(transceiver.sender, SENDER_ENCODER)
        await pc.close()
        await offerer.close()
        return done, again, codec, encoder

    done, again, codec, encoder = asyncio.run(scenario())
    assert codec.lower() == "video/vp8"
    assert done == again == 1
    assert isinstance(encoder, SteadyVp8Encoder)


def vp8_is_keyframe(packets: list[bytes]) -> bool:
    """RFC 6386 9.1: bit 0 of a VP8 frame's first byte is 0 for a keyframe."""
    from aiortc.codecs.vpx import VpxPayloadDescriptor

    _, frame = VpxPayloadDescriptor.parse(packets[0])  # the RTP payload descriptor off
    return not frame[0] & 1


def test_a_picture_loss_request_still_gets_a_keyframe():
    # The sender turns a peer's PLI into force_keyframe; the steady encoder must honour
    # it, or a peer that lost a picture waits for the periodic keyframe (gop 3000 frames).
    from av import VideoFrame

    encoder = SteadyVp8Encoder()
    frames = [VideoFrame(width=160, height=120, format="yuv420p") for _ in range(4)]
    for i, frame in enumerate(frames):
        frame.pts = i * 3000
    kinds = [vp8_is_keyframe(encoder.encode(f)[0]) for f in frames[:3]]
    forced = encoder.encode(frames[3], force_keyframe=True)
    assert kinds == [True, False, False]
    assert vp8_is_keyframe(forced[0])


# ---- encoding in the session's sink ---------------------------------------------------
def yuv_frames(count: int, w: int = 160, h: int = 120) -> list:
    from fractions import Fraction

    import numpy as np
    from av import VideoFrame

    frames = []
    for i in range(count):
        planes = np.full((h * 3 // 2, w), 16 + 8 * i, np.uint8)
        frame = VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90_000)
        frames.append(frame)
    return frames


def test_the_sink_encoder_encodes_and_the_senders_pack_passes_the_result_on():
    encoder = SinkVp8Encoder()
    encoded = [encoder.encode_frame(f) for f in yuv_frames(3)]
    assert all(e is not None for e in encoded)
    assert [e.keyframe for e in encoded] == [True, False, False]
    # libvpx's time base rounds the pts it is given (by 1 at 90 kHz at most).
    assert all(abs(e.timestamp - 3000 * i) <= 1 for i, e in enumerate(encoded))
    assert all(e.keyframe == vp8_is_keyframe(list(e.payloads)) for e in encoded)
    # What the sender does with a non-Frame from the track: its encoder's pack().
    assert encoder.pack(encoded[1]) == (list(encoded[1].payloads), encoded[1].timestamp)


def test_a_keyframe_request_from_any_thread_makes_the_next_frame_a_keyframe():
    import threading

    encoder = SinkVp8Encoder()
    frames = yuv_frames(4)
    kinds = [encoder.encode_frame(f).keyframe for f in frames[:2]]
    asker = threading.Thread(target=encoder.request_keyframe)
    asker.start()
    asker.join()
    kinds += [encoder.encode_frame(f).keyframe for f in frames[2:]]
    assert kinds == [True, False, True, False]  # only the next one


def test_the_sink_encoder_steps_its_bitrate_only_when_steady():
    steady, plain = SinkVp8Encoder(steady=True), SinkVp8Encoder(steady=False)
    start = plain.target_bitrate
    for encoder in (steady, plain):
        encoder.target_bitrate = int(start * 1.2)
    assert steady.target_bitrate == start  # a small rise waits (SteadyVp8Encoder)
    assert plain.target_bitrate == int(start * 1.2)  # aiortc's own rule


def test_a_vp8_sender_gets_the_sink_encoder_and_forwards_picture_loss_to_it():
    async def scenario():
        offerer = TestPeer()
        pc = await answering_peer(await offerer.offer())
        encoder = install_sink_encoder(pc)
        again = install_sink_encoder(pc)
        sender = pc.getTransceivers()[0].sender
        installed = getattr(sender, SENDER_ENCODER)
        sender._send_keyframe()  # what the sender does on a PLI or FIR
        await pc.close()
        await offerer.close()
        return encoder, again, installed

    encoder, again, installed = asyncio.run(scenario())
    assert isinstance(encoder, SinkVp8Encoder) and again is encoder and installed is encoder
    assert encoder.encode_frame(yuv_frames(1)[0]).keyframe
    assert encoder._keyframe_wanted is False


def install_on_a_new_answer(codecs=None, first=None):
    """``(install_sink_encoder's result, the sender's encoder after)`` on a fresh answering
    peer; the offer prefers ``codecs``, and ``first(pc)`` runs before the install."""
    async def scenario():
        offerer = TestPeer()
        if codecs is not None:
            offerer.pc.getTransceivers()[0].setCodecPreferences(codecs)
        pc = await answering_peer(await offerer.offer())
        if first is not None:
            first(pc)
        encoder = install_sink_encoder(pc)
        installed = getattr(pc.getTransceivers()[0].sender, SENDER_ENCODER)
        await pc.close()
        await offerer.close()
        return encoder, installed

    return asyncio.run(scenario())


def test_a_sender_that_negotiated_h264_keeps_aiortcs_own_encoding():
    from aiortc import RTCRtpSender

    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() == "video/h264"]
    encoder, installed = install_on_a_new_answer(codecs=h264)
    assert encoder is None and installed is None  # aiortc picks its H.264 encoder itself


def test_a_sender_with_another_encoder_keeps_it_and_says_so(caplog):
    encoder, installed = install_on_a_new_answer(first=install_steady_encoder)
    assert encoder is None and type(installed) is SteadyVp8Encoder
    assert "already has an encoder (SteadyVp8Encoder)" in caplog.text
