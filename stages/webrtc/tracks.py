"""Adapters between aiortc media tracks and the runtime's `Source` / sink stage.

::

    peer --RTP--> RemoteStreamTrack --pump_track--> TrackSource (latest-frame slot)
        --runtime--> stages --> TrackSink --> OutgoingVideoTrack.recv() --RTP--> peer

* aiortc's incoming track queue is unbounded: a slow graph would let latency
  grow for ever. `pump_track` drains it on the event loop as fast as frames
  come and keeps only the newest in `TrackSource`'s slot; the runtime's
  source thread takes the newest and converts it to RGB there (not on the loop),
  timing the conversion as the source's work (a frame's legs show it apart
  from waiting: `pipeline.legs`).
* `TrackSink` (the last stage, in its worker thread) converts the picture to
  a ``yuv420p`` ``av.VideoFrame`` (`to_yuv420p`) and hands it to `OutgoingVideoTrack`, whose
  ``recv()`` (called by aiortc's sender) waits for a frame newer than the last
  one sent. Nothing is queued: a frame the encoder had no time for is replaced.
  When VP8 was negotiated the sink also encodes the frame, in its thread
  (`stages.webrtc.aiortc_patches.encoder.SinkVp8Encoder`), and the track
  queues the encoded frames for the sender to packetise and send; aiortc
  would otherwise encode in the event loop's shared default executor.
* Outgoing timestamps are the *send* time on a 90 kHz clock, not the capture
  time: the peer's jitter buffer sizes itself from how regularly frames
  arrive relative to their timestamps, and send-time stamps make processing
  jitter invisible to it (capture stamps would make it buffer more). Each
  sent frame's timestamp is kept with the RTP timestamp of the received
  frame it was made from (`OutgoingVideoTrack.timestamps`), so the peer can
  tell which of its camera frames a returned frame shows
  (`stages.webrtc.control_channel`).
* `DelayedAudioTrack` passes the peer's audio back delayed by the video
  path's measured latency (arrival of a video frame to its send), so voice
  and the avatar's lips leave the server together.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import statistics
import threading
import time
from collections.abc import Callable
from fractions import Fraction

import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame as AvFrame

from pipeline.clock import Clock, MonotonicClock
from pipeline.frame import Frame, Image
from pipeline.metrics import GapCounter
from pipeline.stage import SourceFrame, SourceInfo, StageBase
from stages.camera.slot import LatestSlot
from stages.io.av_convert import RgbConverter
from stages.io.errors import SourceError
from stages.webrtc.aiortc_patches.encoder import EncodedVideo, SinkVp8Encoder

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90_000)
_LATENCY_WINDOW = 30  # video frames whose path latency sets the audio delay


async def pump_track(track: MediaStreamTrack, on_frame: Callable[[AvFrame], None],
                     on_end: Callable[[], None]) -> None:
    """Receive every frame of ``track`` at once and hand it to ``on_frame``; then ``on_end``."""
    try:
        while True:
            item = await track.recv()
            if isinstance(item, AvFrame):
                on_frame(item)
    except MediaStreamError:
        pass
    finally:
        on_end()


class TrackSource:
    """A received video track as a self-paced `Source` (see the module docstring).

    ``open()`` waits up to ``open_timeout_s`` for the first frame and reports
    its size; later frames keep their own size (a browser lowers the
    resolution under bandwidth pressure), stages and the encoder follow.
    ``read()`` returns ``None`` once the track ended or the source closed.
    """

    def __init__(self, name: str = "webrtc_in", open_timeout_s: float = 20.0,
                 read_timeout_s: float = 0.5) -> None:
        self.name = name
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._slot: LatestSlot[VideoFrame] = LatestSlot()
        self._last = 0
        self._to_rgb = RgbConverter()  # only read() converts: one thread
        self.arrival_gaps = GapCounter()  # stalls as the frames arrive (event loop only)
        # (pts, arrival ns) of the last frames, to time the receiver's decoding
        self.arrivals: collections.deque[tuple[int, int]] = collections.deque(maxlen=128)

    # ---- the event loop side ----------------------------------------------------
    def push(self, frame: AvFrame) -> None:
        if isinstance(frame, VideoFrame):
            now = time.monotonic_ns()
            self.arrival_gaps.note(now)
            if frame.pts is not None:
                self.arrivals.append((frame.pts, now))
            self._slot.put(frame, now)

    def end(self) -> None:
        self._slot.close()

    @property
    def frames_received(self) -> int:
        got = self._slot.peek()
        return 0 if got is None else got.number

    @property
    def last_arrival_ns(self) -> int | None:
        got = self._slot.peek()
        return None if got is None else got.put_ns

    @property
    def replaced(self) -> int:
        return self._slot.replaced

    # ---- the Source protocol (runtime's source thread) ------------------------------
    def open(self) -> SourceInfo:
        first = self._slot.wait_newer(0, self._open_timeout_s)
        if first is None and self._slot.closed:
            raise SourceError("the connection ended before any video arrived")
        if first is None:
            raise SourceError(f"no video arrived from the peer within {self._open_timeout_s:g} s")
        rate = Fraction(30)  # nominal only: the source is self-paced
        return SourceInfo(first.item.width, first.item.height, rate, self_paced=True)

    def read(self) -> SourceFrame | None:
        while True:
            got = self._slot.wait_newer(self._last, self._read_timeout_s)
            if got is not None:
                self._last = got.number
                frame = got.item
                start = time.monotonic_ns()
                image = self._to_rgb(frame)
                work = (start, time.monotonic_ns())
                time_base = Fraction(frame.time_base) if frame.time_base else None
                return SourceFrame(image, pts=frame.pts, time_base=time_base,
                                   capture_ns=got.put_ns, work_ns=work)
            if self._slot.closed:
                return None

    def close(self) -> None:
        self._slot.close()


class OutgoingVideoTrack(MediaStreamTrack):
    """A video track whose ``recv()`` returns the newest processed frame.

    Frames come in one of two forms, from `TrackSink`'s worker (both
    thread-safe):

    * ``offer`` (pictures aiortc encodes): each replaces one not yet sent;
      ``recv`` stamps the send time as its pts.
    * ``offer_encoded`` (frames the sink encoded with a `SinkVp8Encoder`,
      stamped by `next_pts` before encoding): none is ever replaced, as
      each depends on the one before; they queue, at most ``max_queued``.
      A loop that falls that far behind gets the queue dropped and nothing
      more until a keyframe, which ``offer_encoded``'s ``False`` tells the
      sink to ask for.

    The track records each sent frame's path latency (arrival at the server
    to send, ms) for `path_latency_ms` and the stats endpoint, and in
    ``timestamps`` the pair ``(sent pts, source pts)`` of the last frames
    sent whose source frame had a pts (for a received track: its RTP
    timestamp), both on the 90 kHz clock; ``frames_timed`` counts every pair
    ever recorded, ``encoded_dropped`` the encoded frames dropped.
    """

    kind = "video"

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns,
                 max_queued: int = 8) -> None:
        super().__init__()
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, got {max_queued}")
        self._clock_ns = clock_ns
        self._max_queued = max_queued
        self._slot: LatestSlot[tuple[VideoFrame, int, int | None]] = LatestSlot()
        self._lock = threading.Lock()  # the encoded queue and the pts clock
        self._encoded: collections.deque[tuple[EncodedVideo, int, int | None]] = \
            collections.deque()
        self._awaiting_keyframe = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sent_number = 0
        self._origin_ns: int | None = None
        self._last_pts = -1
        self.frames_sent = 0
        self.encoded_dropped = 0
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=300)
        self.timestamps: collections.deque[tuple[int, int]] = collections.deque(maxlen=300)
        self.frames_timed = 0
        self.send_gaps = GapCounter()  # stalls as the frames leave (event loop only)

    def offer(self, frame: VideoFrame, capture_ns: int, source_pts: int | None = None) -> None:
        """Make ``frame`` the next to send, replacing one not yet sent.

        ``source_pts`` is the pts of the frame it was made from, on the
        90 kHz clock (``None``: unknown, the frame is not paired).
        """
        self._slot.put((frame, capture_ns, source_pts), self._clock_ns())
        self._wake_loop()

    def next_pts(self) -> int:
        """The pts (90 kHz, send time) of a frame encoded now, for `offer_encoded`."""
        return self._next_pts(self._clock_ns())

    def offer_encoded(self, encoded: EncodedVideo, capture_ns: int,
                      source_pts: int | None = None) -> bool:
        """Queue an encoded frame to send after those queued; ``False`` if it was dropped
        (the caller should then ask its encoder for a keyframe; see the class docstring)."""
        with self._lock:
            if len(self._encoded) >= self._max_queued:
                self.encoded_dropped += len(self._encoded)
                self._encoded.clear()
                self._awaiting_keyframe = True
            if self._awaiting_keyframe and not encoded.keyframe:
                self.encoded_dropped += 1
                return False
            self._awaiting_keyframe = False
            self._encoded.append((encoded, capture_ns, source_pts))
        self._wake_loop()
        return True

    def _wake_loop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def recv(self) -> VideoFrame | EncodedVideo:  # type: ignore[override]
        # aiortc's sender encodes an av.Frame itself and hands anything else to its
        # encoder's pack(), which gives an EncodedVideo back as it is (SinkVp8Encoder).
        self._loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            self._wake.clear()
            with self._lock:
                queued = self._encoded.popleft() if self._encoded else None
            if queued is not None:
                encoded, capture_ns, source_pts = queued
                self._record(self._clock_ns(), encoded.timestamp, capture_ns, source_pts)
                return encoded
            got = self._slot.peek()
            if got is not None and got.number > self._sent_number:
                self._sent_number = got.number
                return self._stamp(*got.item)
            await self._wake.wait()

    def stop(self) -> None:
        super().stop()
        self._slot.close()
        self._wake.set()

    def _next_pts(self, now: int) -> int:
        with self._lock:
            if self._origin_ns is None:
                self._origin_ns = now
            pts = max(round((now - self._origin_ns) / 1e9 / VIDEO_TIME_BASE), self._last_pts + 1)
            self._last_pts = pts
            return pts

    def _stamp(self, frame: VideoFrame, capture_ns: int, source_pts: int | None) -> VideoFrame:
        now = self._clock_ns()
        frame.pts = self._next_pts(now)
        frame.time_base = VIDEO_TIME_BASE
        self._record(now, frame.pts, capture_ns, source_pts)
        return frame

    def _record(self, now: int, pts: int, capture_ns: int, source_pts: int | None) -> None:
        self.frames_sent += 1
        self.send_gaps.note(now)
        self.latencies_ms.append((now - capture_ns) / 1e6)
        if source_pts is not None:
            self.timestamps.append((pts, source_pts))
            self.frames_timed += 1

    def path_latency_ms(self) -> float | None:
        """Median arrival-to-send latency of the last frames sent (``None`` before any)."""
        recent = list(self.latencies_ms)[-_LATENCY_WINDOW:]
        return statistics.median(recent) if recent else None


class TrackSink(StageBase):
    """The last stage of a session: hands each picture to an `OutgoingVideoTrack`.

    Runs in its own worker (``blocking``): the RGB -> yuv420p conversion it
    does would otherwise sit on the event loop or in the encoder's path.
    Given the session's `SinkVp8Encoder` it also encodes each picture here,
    so the stage's time includes the VP8 encode and nothing waits for
    aiortc's executor (`stages.webrtc.aiortc_patches.encoder`).
    """

    blocking = True

    def __init__(self, track: OutgoingVideoTrack, name: str = "webrtc_out",
                 encoder: SinkVp8Encoder | None = None) -> None:
        self.name = name
        self._track = track
        self._encoder = encoder

    def process(self, frame: Frame) -> Frame:
        picture = to_yuv420p(frame.image)
        if self._encoder is None:
            self._track.offer(picture, frame.capture_ns, _pts_90k(frame))
            return frame
        picture.pts = self._track.next_pts()
        picture.time_base = VIDEO_TIME_BASE
        encoded = self._encoder.encode_frame(picture)
        if encoded is not None and not self._track.offer_encoded(encoded, frame.capture_ns,
                                                                 _pts_90k(frame)):
            self._encoder.request_keyframe()
        return frame


def _pts_90k(frame: Frame) -> int | None:
    """``frame``'s pts on the 90 kHz RTP video clock (``None`` when it has none)."""
    if frame.pts is None:
        return None
    return round(frame.pts * frame.time_base / VIDEO_TIME_BASE)


def to_yuv420p(image: Image) -> VideoFrame:
    """An RGB picture as a ``yuv420p`` frame (BT.601, limited range, like swscale's default).

    OpenCV converts a 640x480 picture in 0.15 ms where PyAV's rgb24 frame
    plus reformat takes 1.0 ms; pictures with an odd side (which 4:2:0 cannot
    split evenly) go through PyAV.
    """
    height, width = image.shape[:2]
    if height % 2 or width % 2:
        return VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    planes = np.asarray(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420),
                        dtype=np.uint8)
    return VideoFrame.from_ndarray(planes, format="yuv420p")


class DelayedAudioTrack(MediaStreamTrack):
    """The peer's audio, sent back ``delay_s()`` seconds after it arrived.

    ``push`` (on the loop) stores each received frame with its arrival time;
    ``recv`` releases it when its due time comes. When the delay shrinks,
    frames already more than ``late_drop_s`` overdue are dropped (counted in
    ``dropped``) to catch up instead of playing out late; more than
    ``max_buffer_s`` of audio waiting drops the oldest. Timestamps are
    rewritten as a continuous sample count.
    """

    kind = "audio"

    def __init__(self, delay_s: Callable[[], float], *, clock: Clock | None = None,
                 max_buffer_s: float = 1.0, late_drop_s: float = 0.06) -> None:
        super().__init__()
        self._delay_s = delay_s
        self._clock: Clock = clock or MonotonicClock()
        self._max_buffer_ns = int(max_buffer_s * 1e9)
        self._late_ns = int(late_drop_s * 1e9)
        self._frames: collections.deque[tuple[int, AudioFrame]] = collections.deque()
        self._ready = asyncio.Event()
        self._samples = 0
        self.dropped = 0
        self.current_delay_ms = 0.0

    def push(self, frame: AvFrame) -> None:
        if not isinstance(frame, AudioFrame):
            return
        now = self._clock.now_ns()
        self._frames.append((now, frame))
        while self._frames and now - self._frames[0][0] > self._max_buffer_ns:
            self._frames.popleft()
            self.dropped += 1
        self._ready.set()

    def end(self) -> None:
        self.stop()

    def stop(self) -> None:
        super().stop()
        self._ready.set()

    async def recv(self) -> AudioFrame:
        while True:
            arrival, frame = await self._next()
            delay_ns = int(max(self._delay_s(), 0.0) * 1e9)
            self.current_delay_ms = delay_ns / 1e6
            due = arrival + delay_ns
            if self._clock.now_ns() - due > self._late_ns and len(self._frames) > 1:
                self._frames.popleft()
                self.dropped += 1
                continue
            await self._clock.sleep_until(due)
            if self._frames and self._frames[0][1] is frame:  # push() may have trimmed it
                self._frames.popleft()
            return self._restamp(frame)

    async def _next(self) -> tuple[int, AudioFrame]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._frames:
                return self._frames[0]
            self._ready.clear()
            await self._ready.wait()

    def _restamp(self, frame: AudioFrame) -> AudioFrame:
        frame.pts = self._samples
        frame.time_base = Fraction(1, frame.sample_rate)
        self._samples += frame.samples
        return frame
