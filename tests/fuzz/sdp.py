"""Hypothesis strategies of SDP offers: the seed offers broken in the ways peers break them."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from tests.fuzz.corpus import seeds

SEED_OFFERS = {name: data.decode() for name, data in seeds("sdp").items()}
KINDS = ("video", "audio", "application", "text", "image", "message", "", "video2", "vídeo")
CODECS = ("VP8", "H264", "VP9", "AV1", "rtx", "opus", "PCMU", "FOO", "", "H265", "x" * 300)
SDP_LINES = (
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 9 UDP/TLS/RTP/SAVPF 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:0", "a=mid:", "a=rtcp-mux",
    "a=rtpmap:96 VP8/90000", "a=rtpmap:96", "a=fingerprint:sha-256 00", "a=setup:actpass",
    "a=ice-ufrag:", "a=ice-pwd:x", "a=group:BUNDLE 0 1 2 3", "a=sendrecv", "a=inactive",
    "c=IN IP4 127.0.0.1", "a=candidate:1 1 udp 1 127.0.0.1 9 typ host", "a=ssrc:1 cname:x",
    "a=fmtp:96 apt=97", "a=extmap:1 urn:x", "a=sctp-port:0", "v=0", "m=", "a=", "",
)


def _sections(sdp: str) -> tuple[str, list[str]]:
    head, *media = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    return head, media


@st.composite
def line_edits(draw: st.DrawFn, sdp: str) -> str:
    """Lines deleted, repeated, moved, cut short or replaced by SDP-like or random text."""
    lines = sdp.split("\r\n")
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(lines) - 1)) if lines else 0
        action = draw(st.sampled_from(["delete", "repeat", "cut", "replace", "insert"]))
        if action == "delete" and lines:
            del lines[at]
        elif action == "repeat" and lines:
            lines.insert(draw(st.integers(0, len(lines))), lines[at])
        elif action == "cut" and lines:
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        else:
            new = draw(st.sampled_from(SDP_LINES) | st.text(max_size=80))
            lines[at: at + (action == "replace")] = [new]
    return "\r\n".join(lines)


@st.composite
def attribute_values(draw: st.DrawFn, sdp: str) -> str:
    """One to three ``a=`` values (a mid, a fingerprint, a codec's fmtp...) cut, emptied or
    replaced."""
    lines = sdp.split("\r\n")
    attributes = [i for i, line in enumerate(lines) if line.startswith("a=")]
    for _ in range(draw(st.integers(1, 3)) if attributes else 0):
        at = draw(st.sampled_from(attributes))
        name, _, value = lines[at].partition(":")
        cut = value[: draw(st.integers(0, len(value)))]
        junk = draw(st.sampled_from(["", " ", ":", " 99999999999999999999", "\x00", "é"])
                    | st.text(max_size=12))
        lines[at] = f"{name}:{draw(st.sampled_from([cut + junk, junk, cut]))}"
    return "\r\n".join(lines)


@st.composite
def unknown_codecs(draw: st.DrawFn, sdp: str) -> str:
    names = draw(st.lists(st.sampled_from(CODECS) | st.text(max_size=12), min_size=1))
    count = iter(range(1 << 30))
    return re.sub(r"(a=rtpmap:\d+ )([^/\r\n]*)",
                  lambda m: m.group(1) + names[next(count) % len(names)], sdp)


@st.composite
def duplicated_sections(draw: st.DrawFn, sdp: str) -> str:
    head, media = _sections(sdp)
    copies = draw(st.lists(st.sampled_from(media), min_size=1, max_size=3)) if media else []
    renamed = [c.replace("a=mid:", "a=mid:" + draw(st.sampled_from(["", "9", "x"])))
               for c in copies]
    return head + "".join(media + renamed)


@st.composite
def kinds_changed(draw: st.DrawFn, sdp: str) -> str:
    """No video: the video section renamed to another kind, or dropped."""
    head, media = _sections(sdp)
    kind = draw(st.sampled_from(KINDS))
    if draw(st.booleans()):
        return head + "".join(m for m in media if not m.startswith("m=video"))
    return head + "".join(m.replace("m=video", f"m={kind}", 1) for m in media)


@st.composite
def huge(draw: st.DrawFn, sdp: str) -> str:
    line = draw(st.sampled_from(SDP_LINES[5:12])) + "\r\n"
    return sdp + line * draw(st.integers(1000, 12_000))


def binary() -> st.SearchStrategy[str]:
    raw = st.binary(max_size=4096).map(lambda b: b.decode("latin-1"))
    return st.one_of(raw, st.text(max_size=2048), raw.map(lambda s: "v=0\r\n" + s))


@st.composite
def offers(draw: st.DrawFn) -> str:
    """One offer: a seed broken by one of the ways above (or two of them)."""
    sdp = draw(st.sampled_from(sorted(SEED_OFFERS)).map(SEED_OFFERS.__getitem__))
    breakers = [line_edits, attribute_values, unknown_codecs, duplicated_sections,
                kinds_changed, huge]
    for _ in range(draw(st.integers(1, 2))):
        sdp = draw(draw(st.sampled_from(breakers))(sdp))
    if draw(st.integers(0, 9)) == 0:
        sdp = sdp[: draw(st.integers(0, len(sdp)))]  # truncated
    return sdp


def any_offer() -> st.SearchStrategy[str]:
    return st.one_of(offers(), offers(), offers(), binary())
