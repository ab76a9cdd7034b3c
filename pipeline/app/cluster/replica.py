"""`SessionHost`: one Ray Serve replica, holding one model and a few live sessions.

The class is plain Python (Ray wraps it with ``serve.deployment`` in
`pipeline.app.cluster.runtime`, and it runs without Ray in tests): its
constructor builds what ``vicocam serve`` builds (`open_server`: the model
loaded once, the cross-session batcher its sessions share) as a
`WebRTCServer` with no listener, and `SessionHost.session` hosts one
session per call as the stream `stages.webrtc.gateway` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from pipeline.app.cluster.config import ReplicaConfig
from pipeline.app.commands.serve import open_server
from pipeline.heap import frozen_heap
from pipeline.memory import tune_allocator
from stages.webrtc.gateway import refusal_item
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.offers import OfferError
from stages.webrtc.peer_session import Session
from stages.webrtc.server import SessionRefusedError, offer_sdp

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
"""How often a live session's stream says it is alive (with the session's stats)."""
HUNG_UP = "the peer hung up (its stream was cancelled)"


class SessionHost:
    """A replica: `open_server`'s server without a listener; see the module docstring.

    ``name`` is the replica's name: for a Ray Serve replica its actor's name
    (``SERVE_REPLICA::app#deployment#id``, in namespace ``serve``), which
    every answer carries, so a caller knows where a session runs and can
    kill that replica; outside Ray, ``local-PID``.
    """

    def __init__(self, config: ReplicaConfig) -> None:
        # The replica owns its worker process and runs for days, as `vicocam serve` does:
        # arenas Ray's threads made before stay, frame-sized buffers are mapped from now on.
        tune_allocator()
        self._process = contextlib.ExitStack()
        if config.server.ice_host is not None:
            # The replica owns its process, so the process-wide ICE patch is its to make.
            self._process.enter_context(ice_host_addresses([config.server.ice_host]))
        self.server, self._service = open_server(config.server, config.model)
        self._process.enter_context(frozen_heap())  # as `vicocam serve`: see pipeline.heap
        self.name = replica_name()

    def describe(self) -> dict[str, Any]:
        """What the gateway shows for every session: the starting settings and the notice."""
        c = self.server.config
        return {"replica": self.name, "settings": c.settings, "notice": c.notice,
                "sessions": len(self.server.sessions)}

    async def session(self, offer: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Host one session: the answer first, then stats every second until it closes.

        A refused offer yields one refusal item instead (`refusal_item`). When
        the stream is cancelled (the peer hung up through the gateway, or the
        gateway went away) the session closes.
        """
        try:
            session_id, answer = await self.server.open_session(offer_sdp(offer))
        except OfferError as exc:
            yield refusal_item(SessionRefusedError(400, str(exc)))
            return
        except SessionRefusedError as exc:
            yield refusal_item(exc)
            return
        yield {"sdp": answer, "type": "answer", "session": session_id, "replica": self.name}
        session = self.server.sessions.get(session_id)
        if session is None:  # it closed before this line ran
            yield {"session": session_id, "ended": "it closed at once"}
            return
        try:
            async for item in heartbeats(session, HEARTBEAT_S):
                yield item
        finally:
            await session.close(HUNG_UP)

    async def close(self) -> None:
        """Close every session, then the model."""
        await self.server.close_all("the session host is stopping")
        if self._service is not None:
            self._service.close()
        self._process.close()


class ServedSessionHost(SessionHost):
    """The `SessionHost` Ray Serve deploys: `close` runs when the replica stops.

    Ray Serve's only shutdown hook is ``__del__`` (awaited when async) when a
    replica is scaled down or deleted; a context manager has no place there.
    Kept off `SessionHost` so a plain one never leaves an unawaited coroutine.
    """

    async def __del__(self) -> None:
        await self.close()


async def heartbeats(session: Session, interval_s: float) -> AsyncIterator[dict[str, Any]]:
    """``{"session", "stats"}`` every ``interval_s`` while ``session`` is open, then ``ended``."""
    while not session.closed.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.closed.wait(), interval_s)
        if not session.closed.is_set():
            yield {"session": session.id, "stats": session.stats()}
    yield {"session": session.id, "ended": session.close_reason or "closed"}


def replica_name() -> str:
    """This Ray Serve replica's actor name; ``local-PID`` outside a replica."""
    serve = sys.modules.get("ray.serve")  # a replica has it loaded; nothing else needs Ray
    if serve is None:
        return f"local-{os.getpid()}"
    try:
        return str(serve.get_replica_context().replica_id.to_full_id_str())
    except Exception:  # Ray is loaded, but this is not a replica (a driver, a test)
        return f"local-{os.getpid()}"
