"""A bad network in user space: loss, delay with jitter, a bandwidth cap and blackouts.

The kernels here have no ``netem`` queueing discipline, so a link's faults
are applied where a peer's UDP datagrams enter and leave its process: each
of aioice's sockets (one per ICE candidate; with BUNDLE every RTP, RTCP,
STUN and DTLS packet of the call goes through one) is wrapped so that every
datagram, in either direction, passes a `LinkShaper` first. The shaper
decides per packet, as ``netem`` does:

- **blackout**: inside a blackout window every packet is lost;
- **rate**: a packet waits its turn on a link of ``rate_kbps`` (one packet
  serialised after another), and is dropped when the wait would exceed
  ``queue_ms`` (a drop-tail router buffer);
- **loss**: independent random loss with probability ``loss``;
- **delay**: the survivors arrive ``delay_ms`` plus a uniform jitter in
  ``[-jitter_ms, +jitter_ms]`` later; packets sent close together then
  overtake one another (reordering), as on a real jittery path.

Each direction has its own shaper and random stream, both seeded: the same
`LinkConditions` make the same decisions for the same packets. `ImpairedLink`
counts what it did (`LinkStats`) and records its blackouts on the monotonic
clock, so a benchmark can tell when the link came back.

Impairing one peer's sockets impairs the whole path between the two peers,
which is what a bad network between a caller and the server does. The
wrapping reaches into aioice (``Connection._protocols`` and each protocol's
``transport``), found through aiortc's public transceivers; `INTERNALS`
names those pieces and `impair_connection` checks them before touching
anything.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import UserError


class LinkSpecError(UserError):
    """A ``--network`` description that cannot be read; the message shows the form."""


@dataclass(frozen=True, slots=True)
class LinkConditions:
    """What is wrong with a link (applied to each direction alike).

    Attributes:
        loss: probability in [0, 1) that a packet is lost.
        delay_ms: one-way delay added to every packet.
        jitter_ms: the delay varies uniformly by up to this much either way
            (at most ``delay_ms``, so no packet arrives before it was sent).
        rate_kbps: the link's capacity (``None``: unlimited).
        queue_ms: how long a packet may wait for the capped link before it
            is dropped instead (the router's buffer).
        blackouts: ``(start_s, length_s)`` windows, counted from when the
            link is installed, in which every packet is lost.
        seed: the random streams' seed.
    """

    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_kbps: float | None = None
    queue_ms: float = 250.0
    blackouts: tuple[tuple[float, float], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise LinkSpecError(f"loss must be in [0, 1), got {self.loss}")
        if self.delay_ms < 0 or self.queue_ms <= 0:
            raise LinkSpecError("delay must be >= 0 ms and the queue > 0 ms")
        if not 0 <= self.jitter_ms <= self.delay_ms:
            raise LinkSpecError(f"jitter must lie between 0 and the delay ({self.delay_ms:g} ms), "
                                f"got {self.jitter_ms:g} ms")
        if self.rate_kbps is not None and self.rate_kbps <= 0:
            raise LinkSpecError(f"rate must be > 0 kbit/s, got {self.rate_kbps:g}")
        if any(start < 0 or length <= 0 for start, length in self.blackouts):
            raise LinkSpecError("a blackout needs a start >= 0 s and a length > 0 s")

    def describe(self) -> str:
        """The conditions in the form `parse_link` reads (``clean`` when there are none)."""
        parts = []
        if self.loss:
            parts.append(f"loss={self.loss * 100:g}%")
        if self.delay_ms:
            parts.append(f"delay={self.delay_ms:g}ms")
        if self.jitter_ms:
            parts.append(f"jitter={self.jitter_ms:g}ms")
        if self.rate_kbps is not None:
            parts.append(f"rate={self.rate_kbps:g}kbit")
        parts += [f"blackout={start:g}s+{length:g}s" for start, length in self.blackouts]
        return ",".join(parts) or "clean"


LINK_FORM = ("loss=2%,delay=40ms,jitter=10ms,rate=1mbit,blackout=10s+3s,seed=1 "
             "(any subset; 'clean' for none)")
_NUMBER = r"(\d+(?:\.\d+)?)"
_UNITS = {"kbit": 1.0, "mbit": 1000.0, "kbps": 1.0, "mbps": 1000.0}


def parse_link(text: str) -> LinkConditions:
    """`LinkConditions` from ``"loss=2%,delay=40ms,..."`` (see `LINK_FORM`)."""
    if text.strip().lower() in ("", "clean", "none"):
        return LinkConditions()
    values: dict[str, Any] = {}
    blackouts: list[tuple[float, float]] = []
    for item in text.split(","):
        key, sep, value = (p.strip().lower() for p in item.partition("="))
        if not sep:
            raise LinkSpecError(f"cannot read {item!r} in --network; give {LINK_FORM}")
        if key == "blackout":
            blackouts.append(_blackout(value))
        else:
            name = _field(key)
            values[name] = _value(key, value)
    return LinkConditions(**values, blackouts=tuple(blackouts))


def _field(key: str) -> str:
    names = {"loss": "loss", "delay": "delay_ms", "jitter": "jitter_ms", "rate": "rate_kbps",
             "queue": "queue_ms", "seed": "seed"}
    if key not in names:
        raise LinkSpecError(f"--network knows no {key!r}; give {LINK_FORM}")
    return names[key]


def _value(key: str, value: str) -> float | int:
    patterns: dict[str, tuple[str, Callable[[re.Match[str]], float | int]]] = {
        "loss": (_NUMBER + r"(%?)", lambda m: float(m[1]) / (100.0 if m[2] else 1.0)),
        "delay": (_NUMBER + r"(?:ms)?", lambda m: float(m[1])),
        "jitter": (_NUMBER + r"(?:ms)?", lambda m: float(m[1])),
        "queue": (_NUMBER + r"(?:ms)?", lambda m: float(m[1])),
        "rate": (_NUMBER + r"(kbit|mbit|kbps|mbps)", lambda m: float(m[1]) * _UNITS[m[2]]),
        "seed": (r"(\d+)", lambda m: int(m[1])),
    }
    pattern, convert = patterns[key]
    match = re.fullmatch(pattern, value)
    if match is None:
        raise LinkSpecError(f"cannot read {key}={value!r} in --network; give {LINK_FORM}")
    return convert(match)


def _blackout(value: str) -> tuple[float, float]:
    match = re.fullmatch(_NUMBER + r"s?\+" + _NUMBER + r"s?", value)
    if match is None:
        raise LinkSpecError(f"cannot read blackout={value!r}: give START+LENGTH in seconds "
                            "(blackout=10s+3s)")
    return float(match[1]), float(match[2])


@dataclass
class LinkStats:
    """What one direction of a link did to its packets."""

    packets: int = 0
    delivered: int = 0
    lost_random: int = 0
    lost_blackout: int = 0
    lost_queue: int = 0
    reordered: int = 0
    bytes_delivered: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class LinkShaper:
    """One direction's decisions: `admit` says when a packet arrives, or ``None`` if lost.

    Times are seconds on the caller's clock (``start`` is when the link was
    installed, for the blackout windows); the shaper keeps no clock of its own.
    """

    def __init__(self, conditions: LinkConditions, start: float, stream: int) -> None:
        self.conditions = conditions
        self.stats = LinkStats()
        self._start = start
        self._random = random.Random(conditions.seed * 2 + stream)
        self.blackouts = [(start + s, start + s + n) for s, n in conditions.blackouts]
        self._link_free = start
        self._latest_arrival = start

    def black_out(self, now: float, length_s: float) -> tuple[float, float]:
        """Lose every packet from ``now`` for ``length_s``; returns the window."""
        window = (now, now + length_s)
        self.blackouts.append(window)
        return window

    def admit(self, size: int, now: float) -> float | None:
        stats, conditions = self.stats, self.conditions
        stats.packets += 1
        if any(begin <= now < end for begin, end in self.blackouts):
            stats.lost_blackout += 1
            return None
        sent = now
        if conditions.rate_kbps is not None:
            sent = max(now, self._link_free) + size * 8 / (conditions.rate_kbps * 1000)
            if sent - now > conditions.queue_ms / 1000:
                stats.lost_queue += 1
                return None
            self._link_free = sent
        if self._random.random() < conditions.loss:
            stats.lost_random += 1
            return None
        jitter = self._random.uniform(-conditions.jitter_ms, conditions.jitter_ms)
        arrival = sent + (conditions.delay_ms + jitter) / 1000
        if arrival < self._latest_arrival:
            stats.reordered += 1
        self._latest_arrival = max(self._latest_arrival, arrival)
        stats.delivered += 1
        stats.bytes_delivered += size
        return arrival


@dataclass
class ImpairedLink:
    """The two shapers of one peer's link and the blackouts they went through."""

    conditions: LinkConditions
    outgoing: LinkShaper
    incoming: LinkShaper
    sockets: int = 0

    @classmethod
    def starting_now(cls, conditions: LinkConditions) -> ImpairedLink:
        now = time.monotonic()
        return cls(conditions, LinkShaper(conditions, now, 0), LinkShaper(conditions, now, 1))

    @property
    def blackouts(self) -> list[tuple[float, float]]:
        """Every blackout window on the monotonic clock (both directions share them)."""
        return self.outgoing.blackouts

    def black_out(self, length_s: float) -> tuple[float, float]:
        """Cut the link both ways from now for ``length_s``; returns the monotonic window."""
        now = time.monotonic()
        self.incoming.black_out(now, length_s)
        return self.outgoing.black_out(now, length_s)

    def report(self) -> dict[str, Any]:
        return {"conditions": self.conditions.describe(), "sockets": self.sockets,
                "outgoing": self.outgoing.stats.as_dict(),
                "incoming": self.incoming.stats.as_dict()}


class _ShapedTransport:
    """A datagram transport whose ``sendto`` goes through a shaper; all else is the real one's."""

    def __init__(self, inner: asyncio.DatagramTransport, shaper: LinkShaper,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._shaper = shaper
        self._loop = loop

    def sendto(self, data: bytes, addr: Any = None) -> None:
        arrival = self._shaper.admit(len(data), time.monotonic())
        if arrival is not None:
            self._loop.call_at(_loop_time(self._loop, arrival), self._send_now, data, addr)

    def _send_now(self, data: bytes, addr: Any) -> None:
        if not self._inner.is_closing():
            self._inner.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _loop_time(loop: asyncio.AbstractEventLoop, monotonic_s: float) -> float:
    """``monotonic_s`` on the loop's clock (the same clock on CPython's loops, but not promised)."""
    return loop.time() + (monotonic_s - time.monotonic())


INTERNALS = (
    ("aiortc.rtcicetransport", "RTCIceTransport", "_connection"),
    ("aioice.ice", "Connection", "_protocols"),
)
"""The private attributes `impair_connection` reaches: (module, class, attribute)."""


def ice_connections(pc: Any) -> Iterator[Any]:
    """The aioice connections under an ``RTCPeerConnection``'s transceivers and data channel."""
    transports: list[Any] = [t.receiver.transport for t in pc.getTransceivers()]
    sctp = getattr(pc, "sctp", None)
    if sctp is not None:
        transports.append(sctp.transport)
    seen: set[int] = set()
    for dtls in transports:
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        if connection is not None and id(connection) not in seen:
            seen.add(id(connection))
            yield connection


def impair_connection(pc: Any, conditions: LinkConditions) -> ImpairedLink:
    """Put every UDP socket of ``pc`` behind a link with ``conditions``.

    Call once ICE candidates are gathered (after ``setLocalDescription``) and
    before the remote description is set, so that connectivity checks go
    through the link too. Raises ``RuntimeError`` if aiortc keeps its sockets
    elsewhere than `INTERNALS` say.
    """
    link = ImpairedLink.starting_now(conditions)
    loop = asyncio.get_running_loop()
    for connection in ice_connections(pc):
        for protocol in getattr(connection, "_protocols", ()):
            _shape_protocol(protocol, link, loop)
            link.sockets += 1
    if link.sockets == 0:
        raise RuntimeError("found no ICE sockets to impair: gather candidates first "
                           "(setLocalDescription), or aiortc/aioice keeps them elsewhere")
    return link


def _shape_protocol(protocol: Any, link: ImpairedLink, loop: asyncio.AbstractEventLoop) -> None:
    transport = getattr(protocol, "transport", None)
    if transport is None or isinstance(transport, _ShapedTransport):
        return
    protocol.transport = _ShapedTransport(transport, link.outgoing, loop)
    receive = protocol.datagram_received

    def shaped_receive(data: bytes, addr: Any) -> None:
        arrival = link.incoming.admit(len(data), time.monotonic())
        if arrival is not None:
            loop.call_at(_loop_time(loop, arrival), deliver, data, addr)

    def deliver(data: bytes, addr: Any) -> None:
        if not transport.is_closing():  # the call ended while the packet was on its way
            receive(data, addr)

    protocol.datagram_received = shaped_receive
