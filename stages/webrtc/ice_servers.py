"""ICE servers: STUN, and TURN with its credentials, for sessions, the page and clients.

A peer behind a symmetric NAT (many mobile and corporate networks) is
reached only through a TURN relay, and a TURN server wants credentials.
Two kinds of entry name them, both plain frozen dataclasses (a
`SessionConfig` carrying them travels pickled to cluster replicas):

- `IceServer`: the WebRTC ``RTCIceServer`` dictionary (``urls``,
  ``username``, ``credential``): STUN URLs, or TURN URLs with a fixed user
  and password (coturn's ``lt-cred-mech`` with a ``user=``).
- `TurnRestServer`: TURN URLs and coturn's shared secret
  (``use-auth-secret`` / ``static-auth-secret``): every use mints fresh,
  time-limited credentials by the TURN REST API convention
  (`rest_credentials`), so what a page or client is given stops working
  ``ttl_s`` after it was minted, and the secret never leaves the server.

Each entry's ``resolve(now)`` is the `IceServer` to use at ``now`` (Unix
seconds, the clock the TURN server checks expiries against): the server
resolves per config request (the page, ``vicocam client``) and per session
(its own side of ICE), so a replica mints its own. `as_json` /
`from_json` are the ``/api/config`` shape; `rtc_ice_servers` gives aiortc's
objects (aiortc uses only the first STUN and the first TURN URL it can;
browsers try them all).

No repr shows a secret or a credential: a config printed or logged does
not leak them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCIceServer

DEFAULT_TURN_TTL_S = 86_400
"""How long minted TURN credentials stay valid: one day, the TURN REST API
draft's suggestion. coturn checks the expiry on every request of an
allocation, refreshes included, so a session's relay lasts at most this
long after its credentials were minted (a page or client fetches fresh ones
when it reconnects)."""

TURN_REST_NAME = "vicocam"
"""The user part of minted TURN usernames (``<expiry>:vicocam``)."""

_URL = re.compile(r"(?P<scheme>stun|turns?):(?P<host>[^?:/\[\]]+)(?::(?P<port>\d{1,5}))?"
                  r"(?:\?transport=(?P<transport>\w+))?")
# aiortc's own grammar (rtcicetransport.STUN_REGEX / TURN_REGEX): no IPv6 literals.
_TRANSPORTS = {"stun": (None,), "turn": (None, "udp", "tcp"), "turns": (None, "tcp")}
URL_FORMS = ("stun:HOST[:PORT]", "turn:HOST[:PORT][?transport=udp|tcp]",
             "turns:HOST[:PORT][?transport=tcp]")


def url_scheme(url: str) -> str:
    """``stun``, ``turn`` or ``turns`` of a well-formed ICE server URL; `ValueError` otherwise.

    Only what aiortc and browsers both use is taken: no ``stuns:``, no IPv6
    literal hosts (aiortc cannot parse them; give a host name), TURN over
    UDP or TCP, TURN over TLS (``turns:``) over TCP.
    """
    match = _URL.fullmatch(url)
    if match is None or not _port_ok(match["port"]):
        raise ValueError(f"{url!r} is not an ICE server URL; write one of "
                         + ", ".join(URL_FORMS)
                         + " (HOST a name or an IPv4 address: aiortc reads no IPv6 literal)")
    scheme = match["scheme"]
    if match["transport"] not in _TRANSPORTS[scheme]:
        raise ValueError(f"{url!r}: {scheme}: takes "
                         + ("no transport" if scheme == "stun" else
                            "?transport=" + "|".join(str(t) for t in _TRANSPORTS[scheme][1:])))
    return str(scheme)


def _port_ok(port: str | None) -> bool:
    return port is None or 0 < int(port) < 65_536


def is_turn(url: str) -> bool:
    """Whether ``url`` (well-formed) names a TURN server, which needs credentials."""
    return url_scheme(url) in ("turn", "turns")


@dataclass(frozen=True, slots=True)
class IceServer:
    """One ``RTCIceServer``: STUN or TURN URLs and, for TURN, the credentials to use.

    Attributes:
        urls: one or more URLs of one server (``stun:``, ``turn:``, ``turns:``;
            see `url_scheme`), tried with the same credentials.
        username: the TURN username; ``None`` for STUN.
        credential: the TURN password; ``None`` for STUN. Not in the repr.

    Raises `ValueError` for a malformed URL, and (as browsers do) for TURN
    URLs without both a username and a credential.
    """

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.urls, str) or not self.urls:
            raise ValueError(f"give an ICE server's URLs as a non-empty tuple, got {self.urls!r}")
        turn = [url for url in self.urls if is_turn(url)]
        if turn and (not self.username or not self.credential):
            raise ValueError(f"the TURN server {turn[0]} needs a username and a credential")

    def resolve(self, now: float) -> IceServer:
        """Itself: a fixed entry needs nothing minted."""
        return self

    def describe(self) -> str:
        """The URLs, and the username when there is one (never the credential)."""
        user = f" as {self.username}" if self.username else ""
        return ", ".join(self.urls) + user

    def as_json(self) -> dict[str, Any]:
        """The ``RTCIceServer`` dictionary (what ``/api/config`` lists under ``iceServers``)."""
        entry: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
        if self.credential is not None:
            entry["credential"] = self.credential
        return entry

    @classmethod
    def from_json(cls, entry: Any) -> IceServer:
        """An ``RTCIceServer`` dictionary (``urls`` a string or a list); `ValueError` if not one."""
        if not isinstance(entry, dict):
            raise ValueError(f"an ICE server is a JSON object, got {entry!r}")
        urls = entry.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValueError(f"an ICE server's urls are a string or a list of them, "
                             f"got {urls!r}")
        return cls(tuple(urls), _optional_text(entry, "username"),
                   _optional_text(entry, "credential"))


def _optional_text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"an ICE server's {key} is a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class TurnRestServer:
    """TURN URLs whose credentials are minted from coturn's shared secret at each use.

    Attributes:
        urls: ``turn:``/``turns:`` URLs of the server(s) sharing the secret.
        secret: coturn's ``static-auth-secret``. Not in the repr.
        ttl_s: how long minted credentials stay valid (`DEFAULT_TURN_TTL_S`).
        name: the user part of the minted usernames (`TURN_REST_NAME`).
    """

    urls: tuple[str, ...]
    secret: str = field(repr=False)
    ttl_s: int = DEFAULT_TURN_TTL_S
    name: str = TURN_REST_NAME

    def __post_init__(self) -> None:
        if isinstance(self.urls, str) or not self.urls:
            raise ValueError(f"give the TURN URLs as a non-empty tuple, got {self.urls!r}")
        stun = [url for url in self.urls if not is_turn(url)]
        if stun:
            raise ValueError(f"{stun[0]} is no TURN server: a shared secret is for TURN only")
        if not self.secret:
            raise ValueError("the TURN shared secret is empty")
        if self.ttl_s < 1:
            raise ValueError(f"TURN credentials must stay valid >= 1 s, got {self.ttl_s}")

    def resolve(self, now: float) -> IceServer:
        """Fresh credentials, valid until ``now + ttl_s`` (Unix seconds)."""
        username, credential = rest_credentials(self.secret, int(now) + self.ttl_s, self.name)
        return IceServer(self.urls, username, credential)

    def describe(self) -> str:
        """The URLs and how long minted credentials last (never the secret)."""
        return (", ".join(self.urls) + f" with credentials from the shared secret, "
                f"valid {self.ttl_s:g} s")


IceServerEntry = IceServer | TurnRestServer
"""An entry of `SessionConfig.ice_servers`: fixed, or minting its credentials per use."""


def rest_credentials(secret: str, expires: int, name: str = TURN_REST_NAME) -> tuple[str, str]:
    """``(username, credential)`` of the TURN REST API, as coturn's ``use-auth-secret`` checks.

    ``username`` is ``"<expires>:<name>"`` (``expires`` in Unix seconds, after
    which the server refuses it); ``credential`` is
    ``base64(HMAC-SHA1(secret, username))``.
    """
    username = f"{expires}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def resolve_all(entries: Iterable[IceServerEntry], now: float) -> list[IceServer]:
    """Each entry's `IceServer` at ``now`` (Unix seconds; credentials minted where due)."""
    return [entry.resolve(now) for entry in entries]


def rtc_ice_servers(servers: Iterable[IceServer]) -> list[RTCIceServer]:
    """aiortc's ``RTCIceServer`` objects of ``servers``, credentials included."""
    from aiortc import RTCIceServer

    return [RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in servers]
