"""Keeping ICE on chosen addresses (loopback for tests and benchmarks).

aioice gathers host candidates on every non-loopback interface and never
offers 127.0.0.1 (``aioice.ice.get_host_addresses`` skips it), so two peers
on one machine connect over its LAN address, and a test's traffic leaves
loopback. `ice_host_addresses` replaces that function, while the context is
open, with one returning the given addresses; aiortc then also binds its UDP
sockets there. It patches a module attribute of aioice, so it applies to the
whole process: use it around a server or client that owns the process (a
CLI run, a test, a benchmark), not inside a library call.

`filter_candidates` drops a remote peer's ICE candidates on other addresses
from its SDP (a browser also offers its LAN and mDNS addresses).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Collection, Iterator, Sequence


@contextlib.contextmanager
def ice_host_addresses(addresses: Sequence[str]) -> Iterator[None]:
    """Gather aiortc host candidates only on ``addresses`` while inside."""
    import aioice.ice

    chosen = list(addresses)
    original = aioice.ice.get_host_addresses

    def only_chosen(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = only_chosen
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


def filter_candidates(sdp: str, allowed: Collection[str]) -> str:
    """``sdp`` without ``a=candidate`` lines whose address is not in ``allowed``."""
    kept = []
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) < 5 or fields[4] not in allowed:
                continue
        kept.append(line)
    return "".join(kept)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
