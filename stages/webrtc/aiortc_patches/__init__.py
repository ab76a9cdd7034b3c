"""Patches to aiortc's internals, all installed on a peer connection by `install_patches`.

Each one replaces private state of aiortc's receivers and senders, for a
reason measured in this project:

- `jitter` (`FrameAssembler`): aiortc's receiver hands a video frame to the
  decoder only when a packet of the *next* frame arrives, one frame interval
  (~33 ms at 30 fps) late; the assembler releases a frame on its RTP marker
  bit, and audio packets at once (the server delays the audio itself).
- `bandwidth` (`FlooredBitrateEstimator`, `suggest_start_bitrate`): aiortc
  computes its REMB from the video packets alone, capped at 1.5x the video
  rate, which can lock a browser's upload at a few frames per second; a
  floor (300 kbps) keeps it from collapsing, and the answer asks Chromium to
  start its upload higher than its own 300 kbps.
- `encoder` (`SteadyVp8Encoder`): aiortc's VP8 encoder starts a fresh
  encoder, a keyframe, at every 10% move of the peer's bandwidth estimate;
  the steady one raises its target in large steps. `SinkVp8Encoder` runs
  it in the session's sink stage instead of the event loop's shared default
  executor, where the returned video's stalls were measured to begin.
- `playout` (`PlayoutDelay`): a browser's jitter buffer target only grows on
  a busy machine, and capture-to-display latency with it; the answer
  negotiates the ``playout-delay`` RTP header extension and every returned
  packet asks for none.

One more module reads aiortc's state without changing what is sent:
`timestamps` (`received_rtp_origin`, `SentRtpOrigin`), the origins aiortc
counts received and sent video pts from, so the server can name frames by the
RTP timestamps on the wire.

The patches were written against aiortc 1.16. `install_patches` first
checks the installed version against `SUPPORTED` and that every internal the
patches reach into is still where they expect it (`compat`), and raises
`UnsupportedAiortcError`, saying what to install, before touching the
connection otherwise. An aiortc that moved a module or class the patches
import fails with the same error when this package is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stages.webrtc.aiortc_patches.compat import (
    SUPPORTED,
    Internal,
    UnsupportedAiortcError,
    check_aiortc,
    installed_version,
)

try:
    from stages.webrtc.aiortc_patches import bandwidth, encoder, jitter, playout, timestamps
    from stages.webrtc.aiortc_patches.bandwidth import DEFAULT_FLOOR_BPS
    from stages.webrtc.aiortc_patches.encoder import SinkVp8Encoder
    from stages.webrtc.aiortc_patches.jitter import release_times
    from stages.webrtc.aiortc_patches.playout import PlayoutDelay
    from stages.webrtc.aiortc_patches.timestamps import (
        RTP_MODULUS,
        SentRtpOrigin,
        receive_delays_ms,
        received_rtp_origin,
        wire_timestamp,
    )
except ImportError as exc:  # an aiortc that moved what the patches import
    raise UnsupportedAiortcError(installed_version(), str(exc)) from exc

INTERNALS: tuple[Internal, ...] = (
    *jitter.INTERNALS, *bandwidth.INTERNALS, *encoder.INTERNALS, *encoder.SINK_INTERNALS,
    *playout.INTERNALS, *timestamps.INTERNALS,
)
"""Every piece of aiortc the patches reach into."""

__all__ = [
    "DEFAULT_FLOOR_BPS",
    "INTERNALS",
    "RTP_MODULUS",
    "SUPPORTED",
    "PatchConfig",
    "PlayoutDelay",
    "SentRtpOrigin",
    "SinkVp8Encoder",
    "UnsupportedAiortcError",
    "install_patches",
    "receive_delays_ms",
    "received_rtp_origin",
    "release_times",
    "require_supported_aiortc",
    "wire_timestamp",
]


@dataclass(frozen=True, slots=True)
class PatchConfig:
    """Which patches `install_patches` applies besides the frame assemblers (always).

    The defaults apply none of them (a connection that only receives video
    back, like ``vicocam client``'s); a server session's choices come from
    its `SessionConfig`.

    Attributes:
        playout_delay: the playout delay the peer is asked to keep for the
            returned video (`playout`); ``None`` leaves the peer's jitter
            buffer to itself.
        min_remb_bps: the least upload bandwidth reported to the peer
            (`bandwidth`); ``None`` reports aiortc's own estimate.
        start_bitrate_kbps: the bitrate the peer is asked to start its upload
            at (`bandwidth.suggest_start_bitrate`); ``None`` leaves the peer's own.
        steady_bitrate: raise the returned video's VP8 bitrate in large steps
            (`encoder`).
        encode_in_sink: encode the returned video, when VP8, in the
            session's sink stage (`encoder.SinkVp8Encoder`), not in aiortc's
            executor.
    """

    playout_delay: PlayoutDelay | None = None
    min_remb_bps: int | None = None
    start_bitrate_kbps: int | None = None
    steady_bitrate: bool = False
    encode_in_sink: bool = False


def require_supported_aiortc() -> None:
    """Raise `UnsupportedAiortcError` unless the installed aiortc fits every patch."""
    check_aiortc(INTERNALS)


def install_patches(pc: Any, config: PatchConfig,
                    offer_sdp: str | None = None) -> SinkVp8Encoder | None:
    """Check aiortc, then install the frame assemblers and ``config``'s patches on ``pc``.

    Returns the encoder the session's sink must run when ``config`` asks to
    encode there and the returned video is VP8 (else ``None``: aiortc encodes).

    On an answering connection call it after ``setRemoteDescription(offer)``
    and before ``createAnswer()``, with the (filtered) ``offer_sdp``, which
    the playout delay needs; on an offering one, after adding its tracks and
    before ``createOffer()``.

    Raises:
        UnsupportedAiortcError: the installed aiortc does not fit the
            patches (``pc`` is left untouched).
        ValueError: ``config`` asks for a playout delay and no ``offer_sdp``
            was given.
    """
    if config.playout_delay is not None and offer_sdp is None:
        raise ValueError("a playout delay is answered to an offer: pass its offer_sdp")
    require_supported_aiortc()
    jitter.install_frame_assemblers(pc)
    if config.min_remb_bps is not None:
        bandwidth.install_remb_floor(pc, config.min_remb_bps)
    if config.start_bitrate_kbps is not None:
        bandwidth.suggest_start_bitrate(pc, config.start_bitrate_kbps)
    sink_encoder = None
    if config.encode_in_sink:
        sink_encoder = encoder.install_sink_encoder(pc, steady=config.steady_bitrate)
    if config.steady_bitrate and sink_encoder is None:
        encoder.install_steady_encoder(pc)
    if config.playout_delay is not None and offer_sdp is not None:
        playout.request_playout_delay(pc, offer_sdp, config.playout_delay)
    return sink_encoder
