"""`SentRtpOrigin` learns the random origin of a sender's RTP timestamps only from frames
whose packets went out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

pytest.importorskip("aiortc")

from stages.webrtc.aiortc_patches import RTP_MODULUS, SentRtpOrigin

ORIGIN = RTP_MODULUS - 1000  # the sum wraps


@dataclass
class Encoded:
    timestamp: int


class FakeSender:
    """The parts of ``RTCRtpSender`` the watcher reads: it hands frames out, then sends them."""

    def __init__(self) -> None:
        self._RTCRtpSender__packet_count = 0
        self._RTCRtpSender__rtp_timestamp = 0
        self.queue = [Encoded(3000), Encoded(6000), Encoded(9000)]

    async def _next_encoded_frame(self, codec: object) -> Encoded:
        return self.queue.pop(0)

    def send(self, frame: Encoded, packets: int) -> None:
        self._RTCRtpSender__packet_count += packets
        if packets:
            self._RTCRtpSender__rtp_timestamp = (ORIGIN + frame.timestamp) % RTP_MODULUS


def test_the_origin_comes_from_frames_that_were_sent():
    sender = FakeSender()
    watcher = SentRtpOrigin(sender)

    async def scenario() -> list[int | None]:
        seen = []
        for packets in (0, 2, 0):  # the encoder dropped the first and last frames
            frame = await sender._next_encoded_frame(None)
            sender.send(frame, packets)
            seen.append(watcher.origin)
        sender.queue.append(Encoded(12_000))
        await sender._next_encoded_frame(None)
        seen.append(watcher.origin)
        return seen

    # Learnt when the sender asks for the frame after one that went out; a dropped
    # frame's stale timestamp teaches nothing.
    assert asyncio.run(scenario()) == [None, None, ORIGIN, ORIGIN]


def test_a_sender_without_the_internals_is_left_alone(caplog):
    class Bare:
        pass

    watcher = SentRtpOrigin(Bare())
    assert watcher.origin is None
    assert "capture -> display" in caplog.text


def test_gaps_between_encoded_frames_are_counted_as_stalls():
    sender = FakeSender()
    ticks = iter([0, 33_000_000, 183_000_000])  # the third frame 150 ms after the second
    watcher = SentRtpOrigin(sender, clock_ns=lambda: next(ticks))

    async def scenario() -> None:
        for _ in range(3):
            sender.send(await sender._next_encoded_frame(None), 2)

    asyncio.run(scenario())
    assert watcher.encoded_gaps.snapshot() == {"count": 1, "total_ms": 150.0}


def test_a_received_frame_is_timed_from_its_release_to_the_pipeline():
    from stages.webrtc.aiortc_patches import receive_delays_ms

    origin = RTP_MODULUS - 1000  # the wire's timestamps wrap after the first frame
    released = {RTP_MODULUS - 1000: 5.000, 2000: 5.033}
    arrivals = [(0, 5_004_000_000), (3000, 5_035_500_000), (6000, 5_070_000_000)]
    # pts 0 -> wire RTP_MODULUS - 1000; pts 3000 -> 2000 after the wrap; pts 6000 was
    # never released (or is no longer remembered): left out.
    assert receive_delays_ms(arrivals, released, origin) == pytest.approx([4.0, 2.5])
    assert receive_delays_ms(arrivals, released, None) == []
