"""The returned video's VP8 encoder: bitrate raised in large steps, run in the sink.

aiortc 1.16's VP8 encoder follows the peer's bandwidth reports (REMB) and
starts a new libvpx encoder, whose first frame is a keyframe, whenever its
target moves by more than 10%. While a browser's estimate ramps up (a few
percent a second) that is a keyframe every 1.5-2 s: measured in a served
session, 19 fresh encoders in the first 30 s (500 kbps -> 1.43 Mbps), each a
quality pulse and a 10-23 ms encode.

`SteadyVp8Encoder` changes only how the target follows the reports: a lower
report applies at once (the path is congested), a higher one only once it is
at least ``raise_step`` (default +50%) above the current target, or after it
has stayed above it for ``hold_s`` seconds. The ramp from 500 kbps to aiortc's
1.5 Mbps cap then takes 3 encoder restarts instead of a dozen or more.
`install_steady_encoder` gives a sender one before its first frame, when the
negotiated codec is VP8 (other codecs keep aiortc's encoder).

aiortc encodes each frame in the event loop's default executor, a thread
pool all sessions share, outside the pipeline's stages and head limiter; on
a machine shared with a browser the stalls the page counted began there
("Latency where users are" in benchmarks/RESULTS.md). `SinkVp8Encoder`
(`install_sink_encoder`) is the same encoder, with the same bitrate policy,
run by the session's `TrackSink` in its own thread: the stage's time then
includes the encode, the sender only packs what the sink made, and the
peer's keyframe requests are forwarded to it.

Like the `jitter` patch, this sets private state of aiortc's sender; it
checks it and, on an aiortc that keeps it elsewhere, logs a warning and
leaves the sender as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from av import VideoFrame

from stages.webrtc.aiortc_patches.compat import Internal

log = logging.getLogger(__name__)

_SENDER_ENCODER_ATTR = "_RTCRtpSender__encoder"
INTERNALS = (
    Internal("aiortc.codecs.vpx", "Vp8Encoder.target_bitrate"),
    Internal("aiortc.rtcrtpsender", "RTCRtpSender.__init__", _SENDER_ENCODER_ATTR),
    Internal("aiortc.rtcrtptransceiver", "RTCRtpTransceiver.__init__", "_codecs"),
)
"""What `install_steady_encoder` reaches into (checked by `compat.check_aiortc`)."""


class SteadyVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder whose target bitrate rises in steps (see the module docstring)."""

    def __init__(self, raise_step: float = 0.5, hold_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if raise_step <= 0.1:
            raise ValueError(f"raise_step must exceed aiortc's own 0.1, got {raise_step}")
        if hold_s <= 0:
            raise ValueError(f"hold_s must be positive, got {hold_s}")
        super().__init__()
        self.raise_step = raise_step
        self.hold_s = hold_s
        self._clock = clock
        self._higher_since: float | None = None

    @property
    def target_bitrate(self) -> int:
        return Vp8Encoder.target_bitrate.fget(self)  # type: ignore[attr-defined]

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        current = self.target_bitrate
        now = self._clock()
        if bitrate <= current:
            self._higher_since = None
            if bitrate < current:
                self._apply(bitrate)
            return
        if self._higher_since is None:
            self._higher_since = now
        if bitrate >= current * (1 + self.raise_step) or now - self._higher_since >= self.hold_s:
            self._higher_since = None
            self._apply(bitrate)

    def _apply(self, bitrate: int) -> None:
        Vp8Encoder.target_bitrate.fset(self, bitrate)  # type: ignore[attr-defined]


def install_steady_encoder(pc: Any, **options: Any) -> int:
    """Give ``pc``'s video senders whose negotiated codec is VP8 a `SteadyVp8Encoder`.

    Call after ``createAnswer()`` (the codecs are settled) and before media
    flows. Returns how many senders got one.
    """
    done = 0
    for sender in _vp8_senders(pc):
        if not hasattr(sender, _SENDER_ENCODER_ATTR):
            log.warning("this aiortc version keeps its encoder elsewhere; the avatar's bitrate "
                        "follows every bandwidth report (a keyframe each time)")
            continue
        current = getattr(sender, _SENDER_ENCODER_ATTR)
        if current is None:
            setattr(sender, _SENDER_ENCODER_ATTR, SteadyVp8Encoder(**options))
            done += 1
        elif isinstance(current, SteadyVp8Encoder):
            done += 1
    return done


def _vp8_senders(pc: Any) -> Iterator[Any]:
    """The senders of ``pc``'s video transceivers whose negotiated codec is VP8."""
    for transceiver in pc.getTransceivers():
        codecs = getattr(transceiver, "_codecs", None) or []
        if transceiver.kind == "video" and codecs and codecs[0].mimeType.lower() == "video/vp8":
            yield transceiver.sender


# ---- encoding in the session's sink ---------------------------------------------------

_SEND_KEYFRAME = "_send_keyframe"
SINK_INTERNALS = (
    Internal("aiortc.rtcrtpsender", "RTCRtpSender._send_keyframe"),
    Internal("aiortc.rtcrtpsender", "RTCRtpSender._next_encoded_frame"),
)
"""What `install_sink_encoder` reaches into besides `INTERNALS`."""


@dataclass(frozen=True, slots=True)
class EncodedVideo:
    """One frame the session's sink encoded: its RTP payloads and 90 kHz timestamp.

    An `OutgoingVideoTrack` returns it from ``recv()``; aiortc's sender hands
    what is not an ``av.Frame`` to its encoder's ``pack``, where
    `SinkVp8Encoder` gives these back as they are.
    """

    payloads: tuple[bytes, ...]
    timestamp: int
    keyframe: bool


class SinkVp8Encoder(SteadyVp8Encoder):
    """aiortc's VP8 encoder, run by the session's sink stage in its own thread.

    aiortc encodes each frame in the event loop's default executor, a pool
    every session shares, outside the pipeline's stages and its limiter: two
    hand-offs a frame (loop -> pool -> loop) and a stall the pipeline cannot
    see. With this encoder the sink stage calls `encode_frame` (the libvpx
    encode and the RTP packetisation, GIL released while libvpx works), the
    track hands the result over, and the sender's ``pack`` only returns it.

    The sender keeps its say: the peer's bandwidth reports still set
    ``target_bitrate`` (in steps when ``steady``, else as aiortc does) and
    its keyframe requests (PLI, FIR) reach `request_keyframe`. The libvpx
    context is touched only by the thread that calls `encode_frame`.
    """

    def __init__(self, steady: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.steady = steady
        self._keyframe_wanted = False

    @property
    def target_bitrate(self) -> int:
        return SteadyVp8Encoder.target_bitrate.fget(self)  # type: ignore[attr-defined]

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        if self.steady:
            SteadyVp8Encoder.target_bitrate.fset(self, bitrate)  # type: ignore[attr-defined]
        else:
            self._apply(bitrate)

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe (from any thread)."""
        self._keyframe_wanted = True

    def encode_frame(self, frame: VideoFrame) -> EncodedVideo | None:
        """Encode ``frame`` (its pts and time base set); ``None`` if libvpx gave nothing."""
        keyframe, self._keyframe_wanted = self._keyframe_wanted, False
        payloads, timestamp = self.encode(frame, force_keyframe=keyframe)
        if not payloads:
            return None
        return EncodedVideo(tuple(payloads), timestamp, _starts_keyframe(payloads[0]))

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        if isinstance(packet, EncodedVideo):
            return list(packet.payloads), packet.timestamp
        return super().pack(packet)


def _starts_keyframe(payload: bytes) -> bool:
    """Whether a VP8 RTP payload starts a keyframe (RFC 6386 9.1: bit 0 of the frame's
    first byte is 0 for one)."""
    _, data = VpxPayloadDescriptor.parse(payload)
    return bool(data) and not data[0] & 1


def install_sink_encoder(pc: Any, steady: bool = True) -> SinkVp8Encoder | None:
    """Give ``pc``'s first VP8 video sender a `SinkVp8Encoder`, and return it.

    Call where `install_steady_encoder` is called (before media flows). The
    sender's keyframe requests are forwarded to the encoder. ``None``: no
    video sender negotiated VP8 (H.264 keeps aiortc's own encoding), or this
    aiortc keeps its encoder elsewhere (logged); frames are then encoded by
    aiortc as before.
    """
    for sender in _vp8_senders(pc):
        current = getattr(sender, _SENDER_ENCODER_ATTR, False)
        if isinstance(current, SinkVp8Encoder):
            return current
        if current is False or not callable(getattr(sender, _SEND_KEYFRAME, None)):
            log.warning("this aiortc keeps its encoder elsewhere; the returned video is "
                        "encoded in aiortc's executor")
            return None
        if current is not None:
            log.warning("the sender already has an encoder (%s); the returned video is "
                        "encoded in aiortc's executor", type(current).__name__)
            return None
        encoder = SinkVp8Encoder(steady=steady)
        setattr(sender, _SENDER_ENCODER_ATTR, encoder)
        _forward_keyframe_requests(sender, encoder)
        return encoder
    return None


def _forward_keyframe_requests(sender: Any, encoder: SinkVp8Encoder) -> None:
    original = getattr(sender, _SEND_KEYFRAME)

    def send_keyframe() -> None:
        original()  # aiortc's own flag: frames it still encodes itself honour it
        encoder.request_keyframe()

    setattr(sender, _SEND_KEYFRAME, send_keyframe)
