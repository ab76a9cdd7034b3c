"""Checks on a peer's offer before any session work is spent on it.

aiortc takes some offers it cannot finish: one without a usable DTLS
fingerprint is accepted, then fails in a DTLS task nobody awaits, and the
dead session holds its slot until the connect timeout; duplicated media
sections fail deep inside the answer. Checked here, on the text alone (no
peer connection, no pipeline), each is refused with a fixed reason the
peer's user can act on.

The SDP is read the way aiortc reads it (`str.splitlines`, session lines
before the first ``m=``, attributes inherited by every media section), so
what passes here is what aiortc will see.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

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
