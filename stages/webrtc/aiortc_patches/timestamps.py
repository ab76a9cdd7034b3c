"""The RTP timestamps on the wire, which aiortc keeps to itself, both ways.

The page matches each frame the server returns to the camera frame it was
made from by RTP timestamps (`stages.webrtc.control_channel`), so the server
reports both as they travel on the wire; aiortc hides both:

- received video: its receiver rebases timestamps to start at 0
  (``aiortc.rtcrtpreceiver.TimestampMapper``: the first frame's timestamp is
  the origin, moved back by 2**32 at each wrap), so a received frame's pts
  is its RTP timestamp minus an origin only the receiver knows;
  `received_rtp_origin` reads it.
- sent video: its sender adds an origin drawn at random, a local variable of
  ``RTCRtpSender._run_rtp``, to each frame's pts. `SentRtpOrigin` learns it
  from the timestamp of the last packet sent, read when the sender asks for
  its next frame: the sender sends a frame's packets before asking for the
  next one, and a frame counts only when packets went out since it was
  handed over (one the encoder dropped sends none). It also counts the
  gaps over 100 ms between frames the sender encoded (``encoded_gaps``; the
  frame's packets go out right after), so a stall the browser sees can be
  told to begin before or after aiortc's encoder.

A wire timestamp is ``(origin + pts) % RTP_MODULUS``. This reads aiortc's
private state and changes no packet; on an aiortc that keeps it elsewhere the
origins stay ``None`` and the page gets no timing (it says so rather than
showing a wrong latency).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipeline.metrics import GapCounter
from stages.webrtc.aiortc_patches.compat import Internal

log = logging.getLogger(__name__)

_MAPPER_ATTR = "_RTCRtpReceiver__timestamp_mapper"
_SENT_TIMESTAMP_ATTR = "_RTCRtpSender__rtp_timestamp"
_SENT_PACKETS_ATTR = "_RTCRtpSender__packet_count"
INTERNALS = (
    Internal("aiortc.rtcrtpreceiver", "RTCRtpReceiver.__init__", _MAPPER_ATTR),
    Internal("aiortc.rtcrtpreceiver", "TimestampMapper.__init__", "_origin"),
    Internal("aiortc.rtcrtpsender", "RTCRtpSender.__init__", _SENT_TIMESTAMP_ATTR),
    Internal("aiortc.rtcrtpsender", "RTCRtpSender.__init__", _SENT_PACKETS_ATTR),
    Internal("aiortc.rtcrtpsender", "RTCRtpSender._run_rtp", "_next_encoded_frame"),
)
"""What this module reads (checked by `compat.check_aiortc`)."""

RTP_MODULUS = 1 << 32


def received_rtp_origin(pc: Any) -> int | None:
    """The RTP timestamp ``pc``'s video receiver counts received pts from.

    ``None`` before the first video frame, without a video receiver, or on
    an aiortc that keeps it elsewhere.
    """
    for receiver in pc.getReceivers():
        if getattr(receiver.track, "kind", None) == "video":
            origin = getattr(getattr(receiver, _MAPPER_ATTR, None), "_origin", None)
            return origin if isinstance(origin, int) else None
    return None


class SentRtpOrigin:
    """The random origin an aiortc sender adds to the pts of what it sends.

    Wraps the sender's ``_next_encoded_frame`` (see the module docstring);
    ``origin`` is ``None`` until the first frame has gone out;
    ``encoded_gaps`` counts the stalls between encoded frames (event loop only).
    """

    def __init__(self, sender: Any, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.origin: int | None = None
        self.encoded_gaps = GapCounter()
        self._clock_ns = clock_ns
        self._sender = sender
        self._handed: int | None = None  # the pts of the frame handed to the sender last
        self._packets = 0
        original = getattr(sender, "_next_encoded_frame", None)
        if original is None or not hasattr(sender, _SENT_PACKETS_ATTR):
            log.warning("this aiortc keeps its sent RTP timestamps elsewhere; the page "
                        "cannot measure its capture -> display latency")
            return

        async def next_encoded_frame(codec: Any) -> Any:
            self._learn()
            frame = await original(codec)
            if frame is not None:
                self.encoded_gaps.note(self._clock_ns())
                self._handed = frame.timestamp
                self._packets = getattr(sender, _SENT_PACKETS_ATTR)
            return frame

        sender._next_encoded_frame = next_encoded_frame

    def _learn(self) -> None:
        if self._handed is None or getattr(self._sender, _SENT_PACKETS_ATTR) == self._packets:
            return  # nothing handed over yet, or its packets never went out
        wire = getattr(self._sender, _SENT_TIMESTAMP_ATTR)
        self.origin = (wire - self._handed) % RTP_MODULUS


def wire_timestamp(origin: int, pts: int) -> int:
    """The RTP timestamp on the wire of a frame whose pts counts from ``origin``."""
    return (origin + pts) % RTP_MODULUS


def receive_delays_ms(arrivals: Iterable[tuple[int, int]], released: Mapping[int, float],
                      origin: int | None) -> list[float]:
    """How long each received frame took from its release to the decoder to the pipeline.

    ``arrivals`` are ``(pts, monotonic ns)`` of decoded frames as they reached
    the pipeline's slot (`stages.webrtc.tracks.TrackSource.arrivals`),
    ``released`` maps RTP timestamps to the ``time.monotonic`` second their
    last packet completed them (`jitter.release_times`), ``origin`` is the
    receiver's (`received_rtp_origin`). Frames not found in both are left out;
    none without an origin. This is aiortc's decoding and its hand-off to the
    event loop: the part of a frame's way in that the pipeline's clock misses.
    """
    if origin is None:
        return []
    delays = []
    for pts, arrived_ns in arrivals:
        done = released.get(wire_timestamp(origin, pts))
        if done is not None:
            delays.append(arrived_ns / 1e6 - done * 1e3)
    return delays
