"""FrameAssembler: frames complete on their marker packet, not one frame later."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from stages.webrtc.aiortc_patches.jitter import (
    FrameAssembler,
    install_frame_assemblers,
    install_on_receiver,
)


def packet(seq: int, ts: int, marker: bool = False, data: bytes | None = None) -> RtpPacket:
    p = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq % 65536,
                  timestamp=ts, payload=b"x")
    p._data = data if data is not None else f"{seq}|".encode()  # type: ignore[attr-defined]
    return p


def frame_packets(first_seq: int, ts: int, count: int) -> list[RtpPacket]:
    return [packet(first_seq + i, ts, marker=i == count - 1) for i in range(count)]


def feed(buffer, packets):
    """Add packets; return (index of the packet that released a frame, frame) pairs."""
    out = []
    for i, p in enumerate(packets):
        _, frame = buffer.add(p)
        if frame is not None:
            out.append((i, frame))
    return out


def test_a_frame_is_released_by_its_marker_packet():
    packets = frame_packets(100, 3000, 3)
    released = feed(FrameAssembler(), packets)
    assert [i for i, _ in released] == [2]  # the last (marked) packet, not the next frame
    assert released[0][1].data == b"100|101|102|"
    assert released[0][1].timestamp == 3000


def test_aiortc_as_shipped_waits_for_the_next_frame():
    # The delay this module removes: the same packets give nothing from aiortc's buffer.
    assert feed(JitterBuffer(capacity=512, is_video=True), frame_packets(100, 3000, 3)) == []


def test_consecutive_frames_each_released_on_their_own_marker():
    packets = frame_packets(0, 0, 2) + frame_packets(2, 3000, 1) + frame_packets(3, 6000, 4)
    released = feed(FrameAssembler(), packets)
    assert [i for i, _ in released] == [1, 2, 6]
    assert [f.timestamp for _, f in released] == [0, 3000, 6000]


def test_reordered_packets_are_joined_in_sequence_order():
    buffer = FrameAssembler()
    feed(buffer, frame_packets(9, 0, 1))
    p = frame_packets(10, 90, 3)
    released = feed(buffer, [p[1], p[0], p[2]])
    assert [i for i, _ in released] == [2]
    assert released[0][1].data == b"10|11|12|"


def test_a_missing_packet_holds_the_frame_until_it_is_retransmitted():
    p = frame_packets(10, 90, 3)
    buffer = FrameAssembler()
    assert feed(buffer, [p[0], p[2]]) == []  # marker arrived, but 11 is missing
    nxt = frame_packets(13, 180, 1)
    assert feed(buffer, nxt) == []
    released = feed(buffer, [p[1]])  # the NACKed retransmission
    assert released and released[0][1].data == b"10|11|12|"
    released = feed(buffer, frame_packets(14, 270, 1))
    assert [f.timestamp for _, f in released] == [180]  # the backlog drains


def test_sequence_numbers_wrap_around():
    packets = frame_packets(65534, 500, 3)  # 65534, 65535, 0
    released = feed(FrameAssembler(), packets)
    assert [i for i, _ in released] == [2]
    assert released[0][1].data == b"65534|65535|65536|"


def test_a_sender_without_markers_still_gets_frames_on_timestamp_change():
    packets = [packet(1, 10), packet(2, 10), packet(3, 20)]
    released = feed(FrameAssembler(), packets)
    assert [(i, f.timestamp) for i, f in released] == [(2, 10)]


def test_padding_of_a_released_frame_does_not_block_the_next():
    packets = [*frame_packets(1, 10, 2), packet(3, 10, data=b""), *frame_packets(4, 20, 2)]
    released = feed(FrameAssembler(), packets)
    assert [(i, f.timestamp) for i, f in released] == [(1, 10), (4, 20)]


def test_a_lost_packet_that_never_comes_back_is_dropped_at_capacity_with_pli():
    buffer = FrameAssembler(capacity=8)
    feed(buffer, [packet(0, 0), packet(2, 0, marker=True)])  # 1 is lost for good
    plis = []
    released = []
    for seq in range(3, 12):
        pli, frame = buffer.add(packet(seq, seq * 100, marker=True))
        plis.append(pli)
        if frame is not None:
            released.append(frame.timestamp)
    assert any(plis)
    assert released and 0 not in released  # never the half frame whose packet was lost
    assert released == sorted(released)  # later frames flow again
    assert buffer.packets_dropped >= 2


def test_a_big_jump_back_resets_the_stream_with_pli():
    buffer = FrameAssembler()
    feed(buffer, frame_packets(5000, 10, 2))
    pli, frame = buffer.add(packet(1000, 20, marker=True))
    assert pli and frame is not None and frame.timestamp == 20


def test_late_duplicates_are_ignored():
    buffer = FrameAssembler()
    p = frame_packets(7, 10, 2)
    feed(buffer, p)
    assert buffer.add(p[0]) == (False, None)


def test_audio_packets_are_released_at_once_and_gaps_skipped():
    buffer = FrameAssembler(one_packet_frames=True, skip_gap_after=2, request_pli=False)
    released = feed(buffer, [packet(1, 960), packet(2, 1920)])
    assert [i for i, _ in released] == [0, 1]
    # 3 is lost: wait while fewer than 2 newer packets are buffered, then skip it.
    assert buffer.add(packet(4, 3840)) == (False, None)
    pli, frame = buffer.add(packet(5, 4800))
    assert not pli and frame is not None and frame.timestamp == 3840


def test_installed_into_aiortc_receivers():
    async def scenario():
        pc = RTCPeerConnection()
        try:
            video = pc.addTransceiver("video")
            audio = pc.addTransceiver("audio")
            assert install_frame_assemblers(pc) == 2
            assert install_on_receiver(video.receiver, "video")  # idempotent
            attr = "_RTCRtpReceiver__jitter_buffer"
            return [vars(t.receiver)[attr] for t in (video, audio)]
        finally:
            await pc.close()

    video_buffer, audio_buffer = asyncio.run(scenario())
    assert isinstance(video_buffer, FrameAssembler) and isinstance(audio_buffer, FrameAssembler)
    assert video_buffer.capacity == 512
    assert audio_buffer._one_packet and not video_buffer._one_packet


def test_unknown_receivers_are_left_alone():
    class Other:
        pass

    assert install_on_receiver(Other(), "video") is False


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_frame_whose_packet_never_comes_is_given_up_with_a_pli():
    clock = FakeClock()
    buffer = FrameAssembler(give_up_s=0.25, clock=clock)
    broken = frame_packets(0, 0, 3)
    del broken[1]  # lost, and its retransmission too
    outcomes = [buffer.add(p) for p in broken + frame_packets(3, 3000, 2)]
    assert all(frame is None and not pli for pli, frame in outcomes)  # waiting for the NACK
    clock.now = 0.2
    pli, frame = buffer.add(packet(5, 6000, marker=True))
    assert frame is None and not pli  # not yet: a retransmission may still come
    clock.now = 0.3
    pli, frame = buffer.add(packet(6, 9000, marker=True))
    assert pli and frame is not None and frame.timestamp == 3000  # the next whole frame
    assert buffer.frames_given_up == 1
    assert [f.timestamp for _, f in feed(buffer, [packet(7, 12000, marker=True)])] == [6000]


def test_a_retransmission_in_time_loses_nothing():
    clock = FakeClock()
    buffer = FrameAssembler(give_up_s=0.25, clock=clock)
    packets = frame_packets(0, 0, 3) + frame_packets(3, 3000, 2)
    late = packets.pop(1)
    assert feed(buffer, packets) == []
    clock.now = 0.2
    released = feed(buffer, [late, packet(5, 6000, marker=True)])
    assert [f.timestamp for _, f in released] == [0, 3000]
    assert buffer.frames_given_up == 0


def test_a_frame_still_arriving_in_order_is_never_given_up():
    clock = FakeClock()
    buffer = FrameAssembler(give_up_s=0.25, clock=clock)
    assert feed(buffer, frame_packets(0, 0, 3)[:2]) == []
    clock.now = 5.0
    pli, frame = buffer.add(packet(2, 0, marker=True))
    assert not pli and frame is not None and buffer.frames_given_up == 0


def test_video_frames_keep_when_they_were_released_audio_does_not():
    now = [10.0]
    video = FrameAssembler(clock=lambda: now[0])
    feed(video, frame_packets(0, 3000, 2))
    now[0] = 10.033
    feed(video, frame_packets(2, 6000, 1))
    assert list(video.released) == [(3000, 10.0), (6000, 10.033)]
    audio = FrameAssembler(one_packet_frames=True, request_pli=False)
    feed(audio, [packet(1, 960), packet(2, 1920)])
    assert not audio.released
