"""Session hosts in the test's own process: `SessionHost`s reached without Ray.

`LocalHosts.open_stream` is an `OpenStream` like the cluster's: it runs
`SessionHost.session` on the first host with room and streams its items;
``cancel`` cancels the generator the way Ray cancels a request (the host
closes the session), and a cancelled stream raises `StreamCancelledError` to its
reader as Ray raises its ``RequestCancelledError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pipeline.app.cluster.config import ReplicaConfig
from pipeline.app.cluster.replica import SessionHost
from stages.webrtc.server import ServerConfig


class StreamCancelledError(RuntimeError):
    """What a cancelled stream raises to its reader."""


class LocalStream:
    """A `SessionStream` over an async generator; see the module docstring."""

    def __init__(self, items: AsyncIterator[dict[str, Any]]) -> None:
        self._items = items
        self._next: asyncio.Future[dict[str, Any]] | None = None
        self.cancelled = False

    def __aiter__(self) -> LocalStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self.cancelled:
            await self._items.aclose()  # type: ignore[attr-defined]
            raise StreamCancelledError("the request was cancelled")
        self._next = asyncio.ensure_future(anext(self._items))
        try:
            return await self._next
        except asyncio.CancelledError:
            if self.cancelled:
                raise StreamCancelledError("the request was cancelled") from None
            raise

    def cancel(self) -> None:
        self.cancelled = True
        if self._next is not None:
            self._next.cancel()


class LocalHosts:
    """``count`` hosts of ``per_host`` sessions each, without a model (``--identity``).

    They share the test's process: the test keeps ICE on loopback itself
    (`ice_host_addresses`), once, rather than each host patching it in turn.
    """

    def __init__(self, count: int = 1, per_host: int = 2) -> None:
        config = ServerConfig(max_sessions=per_host, max_pending=per_host)
        self.hosts = [SessionHost(ReplicaConfig(config)) for _ in range(count)]
        for index, host in enumerate(self.hosts):
            host.name = f"host-{index}"
        self.streams: list[LocalStream] = []

    def open_stream(self, offer: dict[str, Any]) -> LocalStream:
        host = next((h for h in self.hosts
                     if len(h.server.sessions) < h.server.config.max_sessions), self.hosts[0])
        stream = LocalStream(host.session(offer))
        self.streams.append(stream)
        return stream

    async def close(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(Exception):
                await host.close()
