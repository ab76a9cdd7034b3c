"""Keep the browser's upload from collapsing: a floor under the bandwidth the server reports.

The server tells the browser how much it may send with REMB (receiver
estimated maximum bitrate) messages, which aiortc 1.16 computes from the
*video* packets alone and caps at 1.5 x the video bitrate it receives. The
browser applies the REMB to everything it sends, audio included. With an
audio rate ``A``, the cap's fixed point is ``R = 1.5 (R - A)``, ``R = 3A``
(~150-180 kbps for a browser's Opus): above it the estimate grows, below it
every REMB is lower than the last. A camera picture that is costly to encode
makes the browser's encoder drop frames during the first seconds, its video
rate dips under ``R - A`` and the estimate never recovers: measured with
Chromium 156 and a detailed test pattern, REMB stuck at 180 kbps, the
browser sent 4-5 fps for the whole session while the detector reported no
congestion at all.

`install_remb_floor` gives each video receiver an estimator whose reports
never go below ``floor_bps`` (default 300 kbps, the rate a browser starts a
call at; above ``3A`` for any common audio rate). A REMB is only a ceiling:
the browser still lowers its rate on packet loss, so the floor does not
force 300 kbps through a link that cannot carry it.

Like the `jitter` patch, this swaps private state of aiortc's receiver;
it checks what it replaces and, on an aiortc that keeps it elsewhere, logs a
warning and leaves the receiver as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.rate import RemoteBitrateEstimator

from stages.webrtc.aiortc_patches.compat import Internal

log = logging.getLogger(__name__)

DEFAULT_FLOOR_BPS = 300_000
_ESTIMATOR_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"
INTERNALS = (
    Internal("aiortc.rate", "RemoteBitrateEstimator.add"),
    Internal("aiortc.rtcrtpreceiver", "RTCRtpReceiver.__init__", _ESTIMATOR_ATTR),
    Internal("aiortc.rtcrtptransceiver", "RTCRtpTransceiver.__init__", "_codecs"),
)
"""What `install_remb_floor` and `suggest_start_bitrate` reach into (`compat.check_aiortc`)."""


class FlooredBitrateEstimator(RemoteBitrateEstimator):
    """aiortc's receive-side estimator whose reported bitrate is at least ``floor_bps``."""

    def __init__(self, floor_bps: int) -> None:
        if floor_bps <= 0:
            raise ValueError(f"the bitrate floor must be positive, got {floor_bps}")
        super().__init__()
        self.floor_bps = floor_bps
        self.raised = 0  # reports the floor lifted

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None:
        report = super().add(arrival_time_ms, abs_send_time, payload_size, ssrc)
        if report is None:
            return None
        bitrate, ssrcs = report
        if bitrate < self.floor_bps:
            self.raised += 1
            return self.floor_bps, ssrcs
        return bitrate, ssrcs


def install_remb_floor(pc: Any, floor_bps: int = DEFAULT_FLOOR_BPS) -> int:
    """Give ``pc``'s video receivers a `FlooredBitrateEstimator`; returns how many got one.

    Call before media flows (right after ``setRemoteDescription``).
    """
    done = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video":
            continue
        receiver = transceiver.receiver
        current = getattr(receiver, _ESTIMATOR_ATTR, None)
        if isinstance(current, FlooredBitrateEstimator):
            done += 1
        elif type(current) is RemoteBitrateEstimator:
            setattr(receiver, _ESTIMATOR_ATTR, FlooredBitrateEstimator(floor_bps))
            done += 1
        else:
            log.warning("this aiortc version keeps its bitrate estimator elsewhere; a browser's "
                        "upload may stay throttled (no REMB floor)")
    return done


START_BITRATE_PARAM = "x-google-start-bitrate"


def suggest_start_bitrate(pc: Any, kbps: int) -> int:
    """Ask the peer to start its video upload at ``kbps`` (Chromium's codec parameter).

    Call between ``setRemoteDescription(offer)`` and ``createAnswer()``: the
    answer's video codecs carry ``x-google-start-bitrate``, which Chromium
    reads as where its bandwidth estimate starts (300 kbps otherwise, which
    costs a detailed camera picture its frame rate for the first seconds).
    Returns the number of codecs given the parameter.
    """
    if kbps <= 0:
        raise ValueError(f"the start bitrate must be positive, got {kbps}")
    done = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video":
            continue
        for codec in getattr(transceiver, "_codecs", None) or []:
            if codec.mimeType.lower() != "video/rtx":
                codec.parameters[START_BITRATE_PARAM] = kbps
                done += 1
    return done
