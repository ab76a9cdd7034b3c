"""A fake TURN server for tests: it checks credentials as coturn does, and relays nothing.

`FakeTurn` answers STUN requests on a loopback UDP port the way a coturn
with ``lt-cred-mech`` and either ``use-auth-secret`` (a shared secret, the
TURN REST API credentials) or fixed ``users`` would: a request without
valid credentials gets 401 with a realm and nonce, one with them gets its
success response signed with the long-term key. Allocations get a relayed
address nothing listens on, so calls still connect over their host
candidates; what the fake records is who authenticated, with which
username. The credential check is written here from the TURN REST API
draft, not taken from `stages.webrtc.ice_servers`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import cast

from aioice import stun
from aioice.turn import make_integrity_key

REALM = "vicocam.test"
NONCE = b"0123456789abcdef"
RELAYED = ("127.0.0.1", 9)  # the discard port: checks sent there go nowhere


def rest_password(secret: str, username: str) -> str:
    """The TURN REST API's password of ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class FakeTurn(asyncio.DatagramProtocol):
    """See the module docstring; ``allocations``: ``(username, client address)`` of each
    authenticated Allocate; ``refused``: usernames whose credentials failed."""

    def __init__(self, secret: str | None = None, users: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.users = users
        self.clock = clock
        self.allocations: list[tuple[str, tuple[str, int]]] = []
        self.refused: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def password(self, username: str) -> str | None:
        """The password of ``username``; ``None`` for no such user or an expired one."""
        if self.users is not None:
            return self.users.get(username)
        expires, _, _ = username.partition(":")
        if self.secret is None or not expires.isdigit() or int(expires) < self.clock():
            return None
        return rest_password(self.secret, username)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return  # channel data, or not STUN: nothing is relayed
        if request.message_class == stun.Class.REQUEST and self.transport is not None:
            self.transport.sendto(bytes(self._answer(request, addr)), addr)

    def _answer(self, request: stun.Message, addr: tuple[str, int]) -> stun.Message:
        username = request.attributes.get("USERNAME")
        password = None if username is None else self.password(username)
        if username is None or password is None:
            return self._refuse(request, username)
        key = make_integrity_key(username, REALM, password)
        if not request.check_message_integrity(key):
            return self._refuse(request, username)
        response = stun.Message(request.message_method, stun.Class.RESPONSE,
                                request.transaction_id)
        if request.message_method == stun.Method.ALLOCATE:
            self.allocations.append((username, addr))
            response.attributes.update({"XOR-RELAYED-ADDRESS": RELAYED,
                                        "XOR-MAPPED-ADDRESS": addr, "LIFETIME": 600})
        elif request.message_method == stun.Method.REFRESH:
            response.attributes["LIFETIME"] = request.attributes.get("LIFETIME", 600)
        response.add_message_integrity(key)
        return response

    def _refuse(self, request: stun.Message, username: str | None) -> stun.Message:
        if username is not None:
            self.refused.append(username)
        return stun.Message(request.message_method, stun.Class.ERROR, request.transaction_id,
                            {"ERROR-CODE": (401, "Unauthorized"), "REALM": REALM,
                             "NONCE": NONCE})


@asynccontextmanager
async def fake_turn(**kwargs: object) -> AsyncIterator[tuple[FakeTurn, str]]:
    """A `FakeTurn` (``kwargs`` its settings) on a loopback port, and its ``turn:`` URL."""
    server = FakeTurn(**kwargs)  # type: ignore[arg-type]
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0))
    try:
        yield server, f"turn:127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    finally:
        transport.close()


@contextmanager
def fake_turn_thread(**kwargs: object) -> Iterator[tuple[FakeTurn, str]]:
    """`fake_turn` on its own event loop in a thread, for tests whose server runs in one."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-turn", daemon=True)
    thread.start()
    server = FakeTurn(**kwargs)  # type: ignore[arg-type]
    transport, _ = asyncio.run_coroutine_threadsafe(loop.create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0)), loop).result(timeout=10)
    try:
        yield server, f"turn:127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    finally:
        loop.call_soon_threadsafe(transport.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
