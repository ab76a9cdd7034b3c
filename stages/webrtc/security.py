"""Access control for ``vicocam serve``: Host names, tokens and per-client rate limits.

The server binds 127.0.0.1 by default, where only local programs reach it.
Any other address exposes a camera-processing service to the network, so it
requires an access token (given with ``--token`` or generated and printed at
start); the page passes it on every API call.

A loopback server needs no token, so it checks who is asking another way: the
``Host`` header must name the machine itself (`host_allowlist`), which a page
of another site cannot arrange even when its DNS name points at 127.0.0.1.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stages.webrtc.ice import is_loopback


def resolve_token(host: str, token: str | None) -> str | None:
    """The token to require: the one given, a new random one off loopback, else none."""
    if token:
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison (no timing hints about the token).

    ``given`` may hold lone surrogates (aiohttp keeps a header's non-UTF-8
    bytes that way): encoded as they are, they simply do not match.
    """
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# ``[v6-literal]`` or a name/IPv4 address, each with an optional ``:port``.
_HOST_HEADER = re.compile(r"(?:\[(?P<ip6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::[0-9]*)?")


def host_name(value: str) -> str | None:
    """The name in a ``Host`` value, without port or brackets, lowercased; ``None`` if malformed.

    ``"LocalHost:8080"`` -> ``"localhost"``, ``"[::1]:8080"`` -> ``"::1"``.
    """
    match = _HOST_HEADER.fullmatch(value.strip().lower())
    return None if match is None else match["ip6"] or match["name"]


class HostAllowlist:
    """The ``Host`` names a server answers to: loopback ones plus ``names``.

    This is the defence against DNS rebinding: a page of ``attacker.example``
    whose name is made to resolve to 127.0.0.1 reaches a loopback server with
    ``Host: attacker.example`` (and a matching ``Origin``), so only the name
    tells it from the user's own ``localhost`` tab. The port is not compared:
    a rebound page can use any port, but never a loopback name.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = frozenset(n for n in map(host_name, names) if n is not None)

    def allows(self, host: str | None) -> bool:
        """Whether a request whose ``Host`` header is ``host`` (``None``: missing) may go on."""
        name = host_name(host) if host else None
        return name is not None and (_loopback_name(name) or name in self.names)


_loopback_name = functools.lru_cache(maxsize=256)(is_loopback)
"""`is_loopback`, remembered: every request's Host is checked, and it is nearly always the same."""


def host_allowlist(bind: str, names: Iterable[str]) -> HostAllowlist | None:
    """The Host check of a server bound to ``bind``; ``None`` = any Host is accepted.

    Loopback binds always check: they need no token, so the Host name is all
    that keeps other sites' pages out. Other binds check only when ``names``
    were given: their token already keeps strangers out, and the names they
    are reached by (an address, a DNS alias, a proxy's name) are not known in
    advance, so a fixed list would mostly lock out their own users.
    """
    names = tuple(names)
    return HostAllowlist(names) if names or is_loopback(bind) else None


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per client key: ``rate_per_s`` sustained, ``burst`` at once.

    `check` returns 0.0 when a request may go ahead (and takes a token), else
    the seconds until one would be allowed. At most ``max_keys`` clients are
    tracked; when full, buckets that have refilled are forgotten first. A
    refilled bucket is the same as none, so every ``sweep_s`` those are
    dropped anyway: what a flood from many addresses left is freed after it.
    """

    def __init__(self, rate_per_s: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000,
                 sweep_s: float = 30.0) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._sweep_s = sweep_s
        self._swept = self._clock()

    def tracked(self) -> int:
        """Clients tracked now."""
        return len(self._buckets)

    def check(self, key: str) -> float:
        now = self._clock()
        if now - self._swept >= self._sweep_s:
            self._forget_refilled(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self._max_keys:
            return
        full = self._refilled(now)
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]

    def _refilled(self, now: float) -> list[str]:
        return [k for k, b in self._buckets.items()
                if b.tokens + (now - b.stamp) * self._rate >= self._burst]

    def _forget_refilled(self, now: float) -> None:
        self._swept = now
        for key in self._refilled(now):
            del self._buckets[key]
        if not self._buckets:
            self._buckets = {}  # a dict keeps its largest table until replaced
