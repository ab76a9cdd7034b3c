"""Complete incoming RTP video frames on the marker bit, one frame earlier than aiortc.

aiortc 1.16's receiver reassembles video in ``aiortc.jitterbuffer.JitterBuffer``,
which hands a frame to the decoder only when a packet of the *next* frame
arrives (a timestamp change): every frame waits one frame interval, ~33 ms at
30 fps, before decoding starts. The sender marks the last packet of each
frame with the RTP marker bit (RFC 3551; VP8: RFC 7741, H.264: RFC 6184), so
a frame whose packets from the first to the marked one are all present is
complete the moment the marked packet arrives. `FrameAssembler` releases it
then (and still on a timestamp change, for a sender that never marks).

Audio frames are one packet each (Opus, PCMU); aiortc's audio buffer holds
four frames back (~80 ms) as a prefetch. In ``one_packet_frames`` mode the
assembler releases each packet at once: the server delays the audio itself to
match the video (see `stages.webrtc.tracks.DelayedAudioTrack`), which is also
the playout cushion, and a missing packet is skipped once ``skip_gap_after``
newer ones are waiting (audio is never retransmitted). Since the receiver
takes one frame per packet, a reordered audio packet leaves the stream one
packet (20 ms) behind until the next gap is skipped; well within lip-sync
tolerance, and it never happens on a clean link.

Loss handling: an incomplete frame waits for the NACKed retransmission, but
for at most ``give_up_s`` (0.25 s) while newer packets are waiting behind the
gap; then the incomplete frame is given up, the next whole frame goes on and
a picture-loss indication (PLI) asks the sender for a keyframe. aiortc's
buffer instead waits until packets pile up to ``capacity`` (512 video
packets: seconds of frozen picture when one retransmission is lost too,
since aiortc NACKs a packet only once). When packets do pile up to
``capacity`` the oldest are dropped up to a frame boundary, also with a PLI;
a large jump back in sequence numbers (a sender restart) resets the buffer,
also with a PLI. Until the keyframe arrives the decoder predicts from the
last frame it had (a few frames of smeared picture rather than a frozen one).

The buffer lives in a name-mangled attribute of ``RTCRtpReceiver``;
`install_frame_assemblers` swaps it in place (before media flows) after
checking that the attribute holds an aiortc ``JitterBuffer``, and leaves the
receiver untouched, with a warning, on an aiortc version that keeps it
elsewhere. `FrameAssembler.add` keeps the contract of ``JitterBuffer.add``:
``(request_pli, complete_frame_or_None)``.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from stages.webrtc.aiortc_patches.compat import Internal

log = logging.getLogger(__name__)

_RECEIVER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
INTERNALS = (
    Internal("aiortc.jitterbuffer", "JitterBuffer.add"),
    Internal("aiortc.jitterbuffer", "JitterBuffer.capacity"),
    Internal("aiortc.rtcrtpreceiver", "RTCRtpReceiver.__init__", _RECEIVER_BUFFER_ATTR),
)
"""What `install_on_receiver` reaches into (checked by `compat.check_aiortc`)."""
GIVE_UP_S = 0.25
"""How long a gap in the video packets may hold newer frames back (NACK's chance)."""
_SEQ_MOD = 1 << 16
_HALF = 1 << 15


class FrameAssembler:
    """Reassembles encoded frames from RTP packets; a drop-in for aiortc's jitter buffer.

    Sequence numbers are unwrapped to a growing integer internally, so the
    16-bit wrap-around needs no special case. Only one frame is released per
    added packet (the receiver takes one); frames completed together after a
    retransmission come out on the following packets. ``released`` keeps the
    RTP timestamp and release time (``clock``) of the last video frames
    released, so the receiver's decoding can be timed (`release_times`).
    """

    def __init__(self, capacity: int = 512, *, one_packet_frames: bool = False,
                 max_misorder: int = 100, skip_gap_after: int = 3,
                 request_pli: bool = True, give_up_s: float | None = GIVE_UP_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 2:
            raise ValueError("capacity must be >= 2 packets")
        self._capacity = capacity
        self._one_packet = one_packet_frames
        self._max_misorder = max_misorder
        self._skip_gap_after = skip_gap_after
        self._request_pli = request_pli
        self._give_up_s = give_up_s
        self._clock = clock
        self._blocked_since: float | None = None
        self._packets: dict[int, RtpPacket] = {}
        self._head: int | None = None  # unwrapped seq of the oldest packet not released
        self._released_ts: int | None = None
        self.frames_released = 0
        self.released: collections.deque[tuple[int, float]] = collections.deque(maxlen=128)
        self.packets_dropped = 0
        self.frames_given_up = 0
        self.plis_requested = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Store ``packet``; return ``(request_pli, frame)`` (``frame`` may be None)."""
        if self._head is None:
            self._head = packet.sequence_number
        seq = self._unwrap(packet.sequence_number, self._head)
        pli = False
        if seq < self._head:
            if self._head - seq < self._max_misorder:
                return False, None  # late or duplicate: its frame is gone already
            self._reset(seq)
            pli = self._request_pli
        self._packets[seq] = packet
        if seq - self._head >= self._capacity:
            self._resync(seq - self._capacity + 1)
            pli = self._request_pli
        frame = self._pop_frame()
        if frame is None and self._waited_too_long():
            self._resync(self._head)  # skip the incomplete frame to the next frame start
            self.frames_given_up += 1
            pli = self._request_pli
            frame = self._pop_frame()
        self.plis_requested += pli
        return pli, frame

    def _waited_too_long(self) -> bool:
        """Whether a gap has held newer packets back for over ``give_up_s``.

        Packets of a frame still arriving in order are no gap; the clock
        starts when a gap is first seen and stops when a frame goes out.
        """
        if self._give_up_s is None or self._one_packet or not self._packets:
            self._blocked_since = None
            return False
        assert self._head is not None
        if max(self._packets) - self._head + 1 == len(self._packets):
            self._blocked_since = None  # no packet missing: the frame is only unfinished
            return False
        now = self._clock()
        if self._blocked_since is None:
            self._blocked_since = now
        if now - self._blocked_since < self._give_up_s:
            return False
        self._blocked_since = None
        return True

    @staticmethod
    def _unwrap(sequence_number: int, near: int) -> int:
        """The unwrapped sequence number closest to ``near`` with these low 16 bits."""
        delta = (sequence_number - near) % _SEQ_MOD
        return near + (delta - _SEQ_MOD if delta >= _HALF else delta)

    def _reset(self, head: int) -> None:
        self.packets_dropped += len(self._packets)
        self._packets.clear()
        self._head = head
        self._released_ts = None

    def _resync(self, cut: int) -> None:
        """Give up on packets older than ``cut``; restart at the next sure frame start.

        A packet at or after ``cut`` may be the middle of a frame whose start
        was just dropped, so the head moves on to just after a marked packet
        (or a timestamp change): the decoder never gets half a frame.
        """
        start = cut
        before = self._packets.get(cut - 1)
        if before is None or not before.marker:
            start = self._next_frame_start(cut)
        for seq in [s for s in self._packets if s < start]:
            del self._packets[seq]
            self.packets_dropped += 1
        self._head = start

    def _next_frame_start(self, after: int) -> int:
        stored = sorted(s for s in self._packets if s >= after)
        for seq in stored:
            packet, following = self._packets[seq], self._packets.get(seq + 1)
            if packet.marker or (following is not None and following.timestamp != packet.timestamp):
                return seq + 1
        return stored[-1] + 1 if stored else after

    def _pop_frame(self) -> JitterFrame | None:
        self._discard_stale()
        if self._one_packet:
            return self._pop_single()
        assert self._head is not None
        seq, timestamp = self._head, None
        while seq in self._packets:
            packet = self._packets[seq]
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                return self._release(self._head, seq)  # the next frame began: no marker
            if packet.marker:
                return self._release(self._head, seq + 1)
            seq += 1
        return None  # a packet is missing, or the marked one has not arrived

    def _discard_stale(self) -> None:
        """Drop packets at the head that belong to the frame already released (padding)."""
        while self._head in self._packets and (
            self._packets[self._head].timestamp == self._released_ts
        ):
            del self._packets[self._head]
            self._head += 1

    def _pop_single(self) -> JitterFrame | None:
        assert self._head is not None
        if self._head not in self._packets and len(self._packets) >= self._skip_gap_after:
            self._head = min(self._packets)  # audio: do not wait for a lost packet
        if self._head not in self._packets:
            return None
        return self._release(self._head, self._head + 1)

    def _release(self, start: int, end: int) -> JitterFrame:
        self._blocked_since = None
        packets = [self._packets.pop(seq) for seq in range(start, end)]
        self._head = end
        self._released_ts = packets[0].timestamp
        self.frames_released += 1
        if not self._one_packet:
            self.released.append((packets[0].timestamp, self._clock()))
        data = b"".join(_depayloaded(p) for p in packets)
        return JitterFrame(data=data, timestamp=packets[0].timestamp)


def _depayloaded(packet: RtpPacket) -> bytes:
    # The receiver stores the codec-depayloaded bytes on the packet before add().
    data: bytes = getattr(packet, "_data", packet.payload)
    return data


def install_on_receiver(receiver: Any, kind: str) -> bool:
    """Swap ``receiver``'s jitter buffer for a `FrameAssembler`; True if done.

    Call before media flows (right after the transceiver exists). A receiver
    already holding a `FrameAssembler` is left as it is.
    """
    current = getattr(receiver, _RECEIVER_BUFFER_ATTR, None)
    if isinstance(current, FrameAssembler):
        return True
    if not isinstance(current, JitterBuffer):
        log.warning("this aiortc version keeps its jitter buffer elsewhere; incoming %s "
                    "frames are completed one frame late", kind)
        return False
    if kind == "audio":
        assembler = FrameAssembler(current.capacity, one_packet_frames=True, request_pli=False)
    else:
        assembler = FrameAssembler(current.capacity)
    setattr(receiver, _RECEIVER_BUFFER_ATTR, assembler)
    return True


def assembler_counts(pc: Any) -> dict[str, int]:
    """What the video `FrameAssembler` s of ``pc`` did: frames, given-up frames, PLIs."""
    counts = {"frames_released": 0, "frames_given_up": 0, "packets_dropped": 0,
              "plis_requested": 0}
    for assembler in _video_assemblers(pc):
        for key in counts:
            counts[key] += getattr(assembler, key)
    return counts


def release_times(pc: Any) -> dict[int, float]:
    """RTP timestamp -> when ``pc``'s video `FrameAssembler` released that frame to the
    decoder (``time.monotonic`` seconds), for its last frames; empty without one."""
    for assembler in _video_assemblers(pc):
        return dict(assembler.released)
    return {}


def _video_assemblers(pc: Any) -> Iterator[FrameAssembler]:
    """The `FrameAssembler` s installed on ``pc``'s video receivers."""
    for transceiver in pc.getTransceivers():
        assembler = getattr(transceiver.receiver, _RECEIVER_BUFFER_ATTR, None)
        if transceiver.kind == "video" and isinstance(assembler, FrameAssembler):
            yield assembler


def install_frame_assemblers(pc: Any) -> int:
    """`install_on_receiver` for each transceiver of an ``RTCPeerConnection``; returns the count."""
    return sum(
        install_on_receiver(t.receiver, t.kind) for t in pc.getTransceivers()
        if t.kind in ("audio", "video")
    )
