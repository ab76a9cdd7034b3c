"""Send the avatar with fewer fresh keyframes: VP8 bitrate raised in large steps.

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

Like the `jitter` patch, this sets private state of aiortc's sender; it
checks it and, on an aiortc that keeps it elsewhere, logs a warning and
leaves the sender as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc.codecs.vpx import Vp8Encoder

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
    for transceiver in pc.getTransceivers():
        codecs = getattr(transceiver, "_codecs", None) or []
        if transceiver.kind != "video" or not codecs or codecs[0].mimeType.lower() != "video/vp8":
            continue
        sender = transceiver.sender
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
