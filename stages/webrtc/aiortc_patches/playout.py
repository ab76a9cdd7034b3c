"""Ask the peer to show the returned video at once: the playout-delay RTP header extension.

A browser smooths received video in a jitter buffer whose target delay it
estimates from how frames arrive. On a busy machine the estimate only grows:
measured with Chromium 156 on loopback (identity transform, 640x480 at 30
fps), its ``jitterBufferTargetDelay`` climbed 12.7 -> 20 -> 34 -> 48 ms over
40 s while the network and the server stayed flat (browser -> server 6 ms,
server 3-4 ms), and capture-to-display latency climbed with it, 35 -> 83 ms.
For an avatar in a call, a frame shown late is worse than a frame shown
unevenly.

The sender can bound that buffer with the ``playout-delay`` extension
(``http://www.webrtc.org/experiments/rtp-hdrext/playout-delay``): three
bytes, a 12-bit minimum and a 12-bit maximum delay in 10 ms units. Chromium
offers it in every video m-line; aiortc 1.16 neither answers it nor writes
it. `request_playout_delay` adds it to a video transceiver's answer (with the
id the offer chose) and gives its sender a `PlayoutDelayExtensionsMap`,
which writes the extension into every RTP packet. A peer that did not offer
the extension is left alone (aiortc's own receiver, for example, has no
smoothing buffer to bound).

Like the `jitter` patch, this reaches into aiortc's private state; it
checks what it touches and, on an aiortc that keeps it elsewhere, logs a
warning and leaves the connection as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensions,
    HeaderExtensionsMap,
    pack_header_extensions,
    unpack_header_extensions,
)
from aiortc.sdp import SessionDescription

from stages.webrtc.aiortc_patches.compat import Internal

log = logging.getLogger(__name__)

PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
_UNIT_MS = 10
_MAX_UNITS = (1 << 12) - 1
_SENDER_MAP_ATTR = "_RTCRtpSender__rtp_header_extensions_map"
INTERNALS = (
    Internal("aiortc.rtp", "HeaderExtensionsMap.configure"),
    Internal("aiortc.rtp", "HeaderExtensionsMap.set"),
    Internal("aiortc.rtcrtpsender", "RTCRtpSender.__init__", _SENDER_MAP_ATTR),
    Internal("aiortc.rtcrtptransceiver", "RTCRtpTransceiver.__init__", "_headerExtensions"),
)
"""What `request_playout_delay` reaches into (checked by `compat.check_aiortc`)."""


@dataclass(frozen=True, slots=True)
class PlayoutDelay:
    """The playout delay range the receiver is asked to keep, in milliseconds.

    ``min_ms = max_ms = 0`` (the default) asks for no smoothing at all:
    Chromium then renders each frame as soon as it is decoded. Values are
    carried in 10 ms steps, up to 40,950 ms.
    """

    min_ms: int = 0
    max_ms: int = 0

    def __post_init__(self) -> None:
        for name, value in (("min_ms", self.min_ms), ("max_ms", self.max_ms)):
            if not 0 <= value <= _MAX_UNITS * _UNIT_MS or value % _UNIT_MS:
                raise ValueError(f"playout delay {name} must be a multiple of {_UNIT_MS} ms "
                                 f"in [0, {_MAX_UNITS * _UNIT_MS}], got {value}")
        if self.min_ms > self.max_ms:
            raise ValueError(f"playout delay min {self.min_ms} ms > max {self.max_ms} ms")

    def encode(self) -> bytes:
        """The extension's three bytes: 12-bit min, 12-bit max, 10 ms units, big-endian."""
        word = (self.min_ms // _UNIT_MS) << 12 | (self.max_ms // _UNIT_MS)
        return word.to_bytes(3, "big")

    @classmethod
    def decode(cls, data: bytes) -> PlayoutDelay:
        if len(data) != 3:
            raise ValueError(f"a playout delay is 3 bytes, got {len(data)}")
        word = int.from_bytes(data, "big")
        return cls(min_ms=(word >> 12) * _UNIT_MS, max_ms=(word & _MAX_UNITS) * _UNIT_MS)


class PlayoutDelayExtensionsMap(HeaderExtensionsMap):
    """aiortc's header extension map, plus ``playout-delay`` on every packet once negotiated."""

    def __init__(self, delay: PlayoutDelay) -> None:
        super().__init__()
        self._value = delay.encode()
        self.extension_id: int | None = None

    def configure(self, parameters: RTCRtpParameters) -> None:
        super().configure(parameters)
        for ext in parameters.headerExtensions:
            if ext.uri == PLAYOUT_DELAY_URI:
                self.extension_id = ext.id

    def set(self, values: HeaderExtensions) -> tuple[int, bytes]:
        profile, data = super().set(values)
        if self.extension_id is None:
            return profile, data
        extensions = unpack_header_extensions(profile, data) if data else []
        return pack_header_extensions([*extensions, (self.extension_id, self._value)])


def offered_extension_ids(offer_sdp: str, uri: str = PLAYOUT_DELAY_URI) -> dict[str, int]:
    """``{mid: extension id}`` of the video m-lines of ``offer_sdp`` that offer ``uri``."""
    description = SessionDescription.parse(offer_sdp)
    ids = {}
    for media in description.media:
        if media.kind != "video" or media.rtp.muxId is None:
            continue
        for ext in media.rtp.headerExtensions:
            if ext.uri == uri:
                ids[media.rtp.muxId] = ext.id
    return ids


def request_playout_delay(pc: Any, offer_sdp: str, delay: PlayoutDelay) -> int:
    """Answer ``playout-delay`` on ``pc``'s video transceivers that were offered it.

    Call after ``setRemoteDescription(offer)`` and before ``createAnswer()``.
    Returns how many transceivers will send the extension.
    """
    offered = offered_extension_ids(offer_sdp)
    done = 0
    for transceiver in pc.getTransceivers():
        ext_id = offered.get(transceiver.mid) if transceiver.kind == "video" else None
        if ext_id is not None and _install(transceiver, ext_id, delay):
            done += 1
    return done


def _install(transceiver: Any, ext_id: int, delay: PlayoutDelay) -> bool:
    sender = transceiver.sender
    negotiated = getattr(transceiver, "_headerExtensions", None)
    current = getattr(sender, _SENDER_MAP_ATTR, None)
    if not isinstance(negotiated, list) or not isinstance(current, HeaderExtensionsMap):
        log.warning("this aiortc version keeps its RTP header extensions elsewhere; the peer "
                    "may buffer the returned video (no playout-delay extension)")
        return False
    if not any(ext.uri == PLAYOUT_DELAY_URI for ext in negotiated):
        negotiated.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=PLAYOUT_DELAY_URI))
    if not isinstance(current, PlayoutDelayExtensionsMap):
        setattr(sender, _SENDER_MAP_ATTR, PlayoutDelayExtensionsMap(delay))
    return True
