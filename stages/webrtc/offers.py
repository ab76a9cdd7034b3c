"""Checks on a peer's offer before any session work is spent on it.

aiortc takes some offers it cannot finish: one without a usable DTLS
fingerprint is accepted, then fails in a DTLS task nobody awaits, and the
dead session holds its slot until the connect timeout; duplicated media
sections fail deep inside the answer. Checked here, on the text alone (no
peer connection, no pipeline), each is refused with a fixed reason the
peer's user can act on: the media sections, their ICE credentials and DTLS
fingerprint, a video that is sent, and codecs the server can decode. Last,
aiortc's own parser reads the offer, so an offer that passes fails later only
for what needs a peer connection to find (an H264 profile aiortc lacks).

The SDP is read the way aiortc reads it (`str.splitlines`, session lines
before the first ``m=``, attributes inherited by every media section), so
what passes here is what aiortc will see.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

SUPPORTED_FINGERPRINT_HASHES = frozenset({"sha-256", "sha-384", "sha-512"})
"""Hash functions aiortc checks a peer's certificate with.

The keys of ``aiortc.rtcdtlstransport.X509_DIGEST_ALGORITHMS``, written out
so this module needs no aiortc; a test keeps the two equal.
"""

MAX_SECTIONS = {"video": 1, "audio": 1, "application": 1}
"""Media sections a `Session` uses, by kind: its first video, first audio and data channels.

A second one of a kind would be answered and then ignored, and a kind not
listed is never read, so both are refused. The one ``application`` section
carries the page's control channel (`stages.webrtc.control_channel`); it
must be SCTP over DTLS, the only data transport aiortc speaks.
"""

DECODABLE_CODECS: dict[str, frozenset[tuple[str, int]]] = {
    "video": frozenset({("vp8", 90000), ("h264", 90000)}),
    "audio": frozenset({("opus", 48000), ("g722", 8000), ("pcmu", 8000), ("pcma", 8000)}),
}
"""Codecs aiortc receives, by media kind, as ``(lowercase name, clock rate)``.

The names of ``aiortc.codecs.CODECS`` less RTX (a repair stream, not a
codec), written out like the hashes above; a test keeps the two equal. A
media section offering none of its kind's is refused: aiortc would find no
common codec and fail inside the answer.
"""

_NOT_SENDING = frozenset({"recvonly", "inactive"})
_RTPMAP = re.compile(r"^[0-9]{1,3} ([^/\s]+)/([0-9]{1,9})\b")
_FINGERPRINT = re.compile(r"^(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)$")


class OfferError(ValueError):
    """The peer's offer cannot be answered; the message is for the peer's user."""


@dataclass(slots=True)
class _Section:
    """One part of an SDP: its ``m=`` kind (``""`` for the session part) and its attributes."""

    kind: str
    protocol: str = ""
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [value for attr, value in self.attributes if attr == name]

    def names(self) -> list[str]:
        return [attr for attr, _ in self.attributes]


def check_offer(sdp: str, max_bytes: int) -> None:
    """Refuse ``sdp`` with an `OfferError` unless a `Session` can answer it.

    Every message is fixed text (no exception's, no echo of the SDP beyond a
    media kind), so a reply never leaks what the parser choked on.
    """
    size = len(_utf8(sdp))
    if size > max_bytes:
        raise OfferError(f"the offer's SDP is too large ({size} bytes; the limit is {max_bytes})")
    session, media = _sections(sdp)
    _check_media(media)
    for section in media:
        _check_transport(session, section)
        _check_codecs(section)
    _check_parses(sdp)


def _utf8(sdp: str) -> bytes:
    # A JSON body may carry "\ud800": a str that no encoding can write.
    try:
        return sdp.encode("utf-8")
    except UnicodeEncodeError:
        raise OfferError("the offer's SDP is not valid UTF-8 text") from None


def _sections(sdp: str) -> tuple[_Section, list[_Section]]:
    """The session part and the media sections, as aiortc groups the lines."""
    session = _Section("")
    media: list[_Section] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            fields = line[2:].split(" ")
            media.append(_Section(fields[0], fields[2] if len(fields) > 2 else ""))
        elif line.startswith("a="):
            name, _, value = line[2:].partition(":")
            (media[-1] if media else session).attributes.append((name, value.strip()))
    return session, media


def _check_media(media: list[_Section]) -> None:
    kinds = Counter(section.kind for section in media)
    if kinds["video"] == 0:
        raise OfferError("the offer has no video track; send a camera")
    for kind, count in kinds.items():
        if kind not in MAX_SECTIONS:
            raise OfferError("the offer has a media section other than audio, video and a "
                             "data channel; this server uses only those")
        if count > MAX_SECTIONS[kind]:
            raise OfferError(f"the offer has more than {MAX_SECTIONS[kind]} {kind} section; "
                             "send one camera, at most one microphone and one data channel "
                             "section")
    if any(s.kind == "video" and _NOT_SENDING & set(s.names()) for s in media):
        raise OfferError("the offer does not send its video (a=recvonly or a=inactive); "
                         "send a camera")
    if any(s.kind == "application" and not _sctp_over_dtls(s) for s in media):
        raise OfferError("the offer's data channel section is not SCTP over DTLS "
                         "(UDP/DTLS/SCTP); this server speaks only that")
    _check_mids(media)


def _sctp_over_dtls(section: _Section) -> bool:
    parts = section.protocol.upper().split("/")
    return "DTLS" in parts and "SCTP" in parts


def _check_mids(media: list[_Section]) -> None:
    # aiortc finds transceivers by mid, so a repeated one cannot be answered.
    mids = [mid for section in media for mid in section.values("mid")]
    if len(mids) != len(set(mids)):
        raise OfferError("the offer repeats a media section id (a=mid)")


def _check_transport(session: _Section, section: _Section) -> None:
    """ICE credentials and a usable DTLS fingerprint, the section's own or the session's."""
    for name in ("ice-ufrag", "ice-pwd"):
        # aiortc takes the section's own value over the session's.
        if not (section.values(name) or session.values(name) or [""])[-1]:
            raise OfferError(f"the offer's {section.kind} section has no a={name}")
    fingerprints = session.values("fingerprint") + section.values("fingerprint")
    if not fingerprints:
        raise OfferError(f"the offer's {section.kind} section has no DTLS fingerprint "
                         "(a=fingerprint)")
    if not any(_usable_fingerprint(value) for value in fingerprints):
        raise OfferError("the offer's DTLS fingerprint is malformed or uses a hash function "
                         "this server does not support (use sha-256, sha-384 or sha-512)")


def _usable_fingerprint(value: str) -> bool:
    match = _FINGERPRINT.match(value)
    return match is not None and match.group(1).lower() in SUPPORTED_FINGERPRINT_HASHES


CODEC_ADVICE = {"video": "send VP8 or H264", "audio": "send Opus, G.722, PCMU or PCMA"}


def _check_codecs(section: _Section) -> None:
    """An audio or video section must offer a codec aiortc decodes (an ``a=rtpmap`` of it)."""
    decodable = DECODABLE_CODECS.get(section.kind)
    if decodable is None:
        return
    if not any(_codec(value) in decodable for value in section.values("rtpmap")):
        raise OfferError(f"the offer's {section.kind} uses no codec this server can decode; "
                         f"{CODEC_ADVICE[section.kind]}")


def _codec(rtpmap: str) -> tuple[str, int] | None:
    """``(lowercase name, clock rate)`` of an ``a=rtpmap`` value such as ``96 VP8/90000``."""
    match = _RTPMAP.match(rtpmap)
    return None if match is None else (match.group(1).lower(), int(match.group(2)))


def _check_parses(sdp: str) -> None:
    """aiortc's own parser reads ``sdp``; what it raises stays in the log (its internals)."""
    from aiortc.sdp import SessionDescription

    try:
        SessionDescription.parse(sdp)
    except Exception as exc:
        log.info("an offer's SDP could not be parsed: %r", exc)
        raise OfferError("the offer's SDP is malformed (it could not be parsed)") from None
