"""Track adapters: newest-frame hand-over both ways, send-time stamps, delayed audio."""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("aiortc")

from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from pipeline.clock import ManualClock
from pipeline.frame import Frame
from stages.io.errors import SourceError
from stages.stamp import read_stamp, stamp
from stages.webrtc.aiortc_patches.encoder import EncodedVideo, SinkVp8Encoder
from stages.webrtc.tracks import (
    DelayedAudioTrack,
    OutgoingVideoTrack,
    TrackSink,
    TrackSource,
    to_yuv420p,
)


def video(index: int, w: int = 96, h: int = 72) -> VideoFrame:
    image = np.zeros((h, w, 3), np.uint8)
    stamp(image, index)
    frame = VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts, frame.time_base = index * 3000, Fraction(1, 90_000)
    return frame


def audio(samples: int = 960) -> AudioFrame:
    frame = AudioFrame.from_ndarray(np.zeros((1, samples * 2), np.int16), format="s16",
                                    layout="stereo")
    frame.sample_rate = 48_000
    return frame


class Ticks:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


# ---- incoming ------------------------------------------------------------------------
def test_track_source_gives_the_newest_frame_and_ends_with_the_track():
    source = TrackSource(open_timeout_s=5, read_timeout_s=0.05)
    source.push(video(0))
    info = source.open()
    assert (info.width, info.height, info.self_paced) == (96, 72, True)
    first = source.read()
    assert first is not None and read_stamp(first.image) == 0
    for index in (1, 2, 3):
        source.push(video(index))
    newest = source.read()
    assert newest is not None and read_stamp(newest.image) == 3
    assert newest.pts == 9000 and newest.time_base == Fraction(1, 90_000)
    assert source.replaced == 2 and source.frames_received == 4
    source.end()
    assert source.read() is None


def test_track_source_times_its_colour_conversion_after_the_frames_arrival():
    source = TrackSource(open_timeout_s=5, read_timeout_s=0.05)
    source.push(video(0))
    source.open()
    got = source.read()
    assert got is not None and got.work_ns is not None and got.capture_ns is not None
    start, end = got.work_ns
    assert got.capture_ns <= start <= end <= time.monotonic_ns()


def test_track_source_without_video_fails_to_open_with_a_reason():
    with pytest.raises(SourceError, match="no video arrived"):
        TrackSource(open_timeout_s=0.05).open()


# ---- outgoing ------------------------------------------------------------------------
def test_outgoing_track_sends_only_the_newest_frame_with_send_time_stamps():
    ticks = Ticks()
    track = OutgoingVideoTrack(clock_ns=ticks)

    async def scenario():
        track.offer(video(1), capture_ns=0)
        track.offer(video(2), capture_ns=0)  # replaces 1 before it was sent
        ticks.now = 10_000_000
        first = await track.recv()
        waiter = asyncio.create_task(track.recv())
        await asyncio.sleep(0)
        assert not waiter.done()  # nothing newer: it waits
        ticks.now = 50_000_000
        threading.Thread(target=track.offer, args=(video(3), 40_000_000)).start()
        second = await asyncio.wait_for(waiter, 10)
        return first, second

    first, second = asyncio.run(scenario())
    assert read_stamp(np.asarray(first.to_ndarray(format="rgb24"), np.uint8)) == 2
    assert read_stamp(np.asarray(second.to_ndarray(format="rgb24"), np.uint8)) == 3
    assert first.time_base == Fraction(1, 90_000)
    assert (first.pts, second.pts) == (0, 3600)  # 40 ms of send time at 90 kHz
    assert list(track.latencies_ms) == [10.0, 10.0]
    assert track.path_latency_ms() == 10.0
    # Sent at 10 and 50 ms: a 40 ms gap is no stall.
    assert track.send_gaps.snapshot() == {"count": 0, "total_ms": 0.0}


def test_outgoing_track_counts_a_stall_between_sent_frames():
    ticks = Ticks()
    track = OutgoingVideoTrack(clock_ns=ticks)

    async def scenario():
        for ms in (0, 33, 183, 216):  # 150 ms between the second and third
            ticks.now = ms * 1_000_000
            track.offer(video(ms), capture_ns=0)
            await track.recv()

    asyncio.run(scenario())
    assert track.send_gaps.snapshot() == {"count": 1, "total_ms": 150.0}


def test_outgoing_track_pairs_each_sent_pts_with_its_source_pts():
    ticks = Ticks()
    track = OutgoingVideoTrack(clock_ns=ticks)

    async def scenario():
        sent = []
        for step, source in enumerate((4_000_000_000, None, 4_000_006_000)):
            ticks.now = step * 30_000_000
            track.offer(video(step), capture_ns=0, source_pts=source)
            sent.append((await track.recv()).pts)
        return sent

    sent = asyncio.run(scenario())
    assert sent == [0, 2700, 5400]
    # The frame without a source pts is sent and left out of the pairs.
    assert list(track.timestamps) == [(0, 4_000_000_000), (5400, 4_000_006_000)]
    assert track.frames_timed == 2 and track.frames_sent == 3


def test_stopping_the_outgoing_track_ends_a_waiting_recv():
    track = OutgoingVideoTrack()

    async def scenario():
        waiter = asyncio.create_task(track.recv())
        await asyncio.sleep(0)
        track.stop()
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(waiter, 10)

    asyncio.run(scenario())


def test_track_sink_hands_yuv_frames_to_the_track():
    track = OutgoingVideoTrack()
    image = np.zeros((72, 96, 3), np.uint8)
    stamp(image, 5)
    TrackSink(track).process(Frame(seq=0, capture_ns=123, image=image, pts=7,
                                   time_base=Fraction(1, 30)))
    got = track._slot.peek()
    assert got is not None
    frame, capture_ns, source_pts = got.item
    assert frame.format.name == "yuv420p" and capture_ns == 123
    assert source_pts == 21_000  # 7/30 s on the 90 kHz RTP clock
    assert read_stamp(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)) == 5


def encoded(pts: int, keyframe: bool = False) -> EncodedVideo:
    return EncodedVideo((bytes([pts % 256]),), pts, keyframe)


def test_encoded_frames_are_sent_in_order_never_replaced():
    ticks = Ticks()
    track = OutgoingVideoTrack(clock_ns=ticks)

    async def scenario():
        for n in range(3):  # the loop late: three frames queue before it sends
            assert track.offer_encoded(encoded(n * 3000, keyframe=n == 0), capture_ns=0,
                                       source_pts=90_000 + n)
        ticks.now = 20_000_000
        return [await track.recv() for _ in range(3)]

    sent = asyncio.run(scenario())
    assert [f.timestamp for f in sent] == [0, 3000, 6000]
    assert track.frames_sent == 3 and track.encoded_dropped == 0
    assert list(track.latencies_ms) == [20.0, 20.0, 20.0]
    # Pairs carry the encoder's timestamp: the one on the wire.
    assert list(track.timestamps) == [(0, 90_000), (3000, 90_001), (6000, 90_002)]


def test_a_loop_too_far_behind_drops_the_queue_and_waits_for_a_keyframe():
    track = OutgoingVideoTrack(max_queued=2)

    async def scenario():
        offered = [track.offer_encoded(encoded(n, keyframe=n == 0), capture_ns=0)
                   for n in range(4)]
        # Frame 2 found the queue full: 0 and 1 were dropped, and 2 and 3 (inter frames
        # without their references) too; the keyframe the sink then asks for restarts it.
        offered.append(track.offer_encoded(encoded(4, keyframe=True), capture_ns=0))
        offered.append(track.offer_encoded(encoded(5), capture_ns=0))
        return offered, [(await track.recv()).timestamp for _ in range(2)]

    offered, sent = asyncio.run(scenario())
    assert offered == [True, True, False, False, True, True]
    assert sent == [4, 5] and track.encoded_dropped == 4


def test_a_full_queue_is_replaced_by_a_keyframe_at_once():
    track = OutgoingVideoTrack(max_queued=2)

    async def scenario():
        offered = [track.offer_encoded(encoded(n, keyframe=n in (0, 2)), capture_ns=0)
                   for n in range(3)]
        return offered, await track.recv()

    offered, first = asyncio.run(scenario())
    assert offered == [True, True, True] and first.timestamp == 2
    assert track.encoded_dropped == 2


def test_the_outgoing_track_refuses_an_empty_queue():
    with pytest.raises(ValueError):
        OutgoingVideoTrack(max_queued=0)


def test_track_sink_with_an_encoder_encodes_in_its_thread_stamped_by_the_track():
    ticks = Ticks()
    track = OutgoingVideoTrack(clock_ns=ticks)
    sink = TrackSink(track, encoder=SinkVp8Encoder())
    image = np.zeros((72, 96, 3), np.uint8)

    async def scenario():
        sent = []
        for n in range(3):
            ticks.now = n * 33_000_000
            sink.process(Frame(seq=n, capture_ns=0, image=image, pts=n,
                               time_base=Fraction(1, 30)))
            sent.append(await track.recv())
        return sent

    sent = asyncio.run(scenario())
    assert all(isinstance(f, EncodedVideo) for f in sent)
    assert [f.keyframe for f in sent] == [True, False, False]
    # Send-time stamps, taken before encoding: 33 ms apart (libvpx rounds by 1 at most).
    assert all(abs(f.timestamp - 2970 * n) <= 1 for n, f in enumerate(sent))
    assert [source for _, source in track.timestamps] == [0, 3000, 6000]


def test_track_sink_asks_for_a_keyframe_when_the_track_dropped_its_frame():
    track = OutgoingVideoTrack(max_queued=1)
    encoder = SinkVp8Encoder()
    sink = TrackSink(track, encoder=encoder)
    image = np.zeros((72, 96, 3), np.uint8)
    for n in range(2):  # nothing sends: the second finds the queue full
        sink.process(Frame(seq=n, capture_ns=0, image=image))
    assert track.encoded_dropped == 2 and encoder._keyframe_wanted


def test_yuv_conversion_matches_pyavs_and_takes_odd_sizes():
    y, x = np.mgrid[0:120, 0:160].astype(np.float32)
    image = np.stack([x * 1.5, y * 2.0, 255 - x - y * 0.5], axis=-1).clip(0, 255).astype(np.uint8)
    ours = to_yuv420p(image).to_ndarray().astype(int)
    pyav = VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    assert np.abs(ours - pyav.to_ndarray().astype(int)).max() <= 2
    back = to_yuv420p(image).to_ndarray(format="rgb24").astype(int)
    assert np.abs(back - image).mean() < 2.0
    odd = to_yuv420p(image[:119, :159])
    assert odd.format.name == "yuv420p" and (odd.width, odd.height) == (159, 119)


# ---- audio ---------------------------------------------------------------------------
def test_audio_leaves_after_the_video_path_latency():
    clock = ManualClock()
    delay = [0.1]
    track = DelayedAudioTrack(lambda: delay[0], clock=clock)

    async def scenario():
        sent = []
        for i in range(3):
            clock.advance(20_000_000 if i else 0)
            track.push(audio())
        for _ in range(3):
            frame = await track.recv()
            sent.append((clock.now_ns(), frame.pts))
        return sent

    sent = asyncio.run(scenario())
    assert [t for t, _ in sent] == [100_000_000, 120_000_000, 140_000_000]
    assert [pts for _, pts in sent] == [0, 960, 1920]  # continuous sample count


def test_audio_catches_up_when_the_delay_shrinks():
    clock = ManualClock()
    delay = [0.3]
    track = DelayedAudioTrack(lambda: delay[0], clock=clock, late_drop_s=0.06)

    async def scenario():
        for i in range(10):
            clock.advance(20_000_000 if i else 0)
            track.push(audio())
        delay[0] = 0.0  # the video path got fast: audio is now 180 ms overdue
        return await track.recv()

    frame = asyncio.run(scenario())
    assert track.dropped >= 6
    assert frame.pts == 0


def test_audio_buffer_is_bounded():
    clock = ManualClock()
    track = DelayedAudioTrack(lambda: 10.0, clock=clock, max_buffer_s=0.1)
    for _ in range(20):
        track.push(audio())
        clock.advance(20_000_000)
    assert len(track._frames) <= 6 and track.dropped >= 14
