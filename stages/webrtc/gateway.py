"""A signalling gateway whose sessions run in other processes (``vicocam serve --cluster``).

`ClusterGateway` is the `WebRTCServer` of one machine with the session work
moved out: the same page, static files, ``/api/config``, preset avatars,
token, TLS, ``Host`` guard and rate limits, but ``/api/offer`` forwards the
offer to a session host and answers with what the host answered. A host is
reached through an `OpenStream`: one call per session returns a
`SessionStream`, a long-lived stream of small JSON-ready items. The cluster
layer (`pipeline.app.cluster`) backs it with a Ray Serve handle; tests may
back it with anything that streams items the same way.

The stream of one session, as the host yields it::

    {"sdp": ..., "type": "answer", "session": ID, "replica": NAME}   first
    {"session": ID, "stats": {...}}                                    about every second
    {"session": ID, "ended": REASON}                                   last, when it closes

or, instead of the answer, one refusal ``{"error": TEXT, "status": 400|503|500,
"retry_after": S|None}`` (`refusal_item`). Media never passes here: the peer
and the host connect directly (ICE candidates of the host's machine), and
the page's controls and stats use the session's data channel, so no HTTP
request after the offer needs to reach the same host.

Lifetimes:

- The first item is awaited at most ``answer_timeout_s`` (long enough for a
  host to start when the cluster scales up); then, or when the host is lost
  before answering, the peer gets 503 with ``Retry-After``.
- A background task drains the rest. When the stream ends, raises (its host
  died) or stays silent ``heartbeat_timeout_s``, the gateway forgets the
  session and logs why; the slot is free again.
- ``DELETE /api/sessions/{id}`` cancels the stream; the host closes the
  session when its stream is cancelled.
- Capacity: live sessions plus those awaiting their answer may not exceed
  ``capacity`` (every host's sessions together); beyond it an offer gets
  503 ``NO_CAPACITY`` with ``Retry-After`` at once, never a hang.
  ``max_pending`` of the `ServerConfig` bounds the offers awaiting their
  answer, as it bounds the connecting sessions of a single server.
- Per-session routes that need the session's own process (settings, avatar
  upload) answer 409: the session's data channel does those (the page uses
  it). ``GET /api/sessions/{id}/stats`` answers the host's last stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from aiohttp import web

from stages.webrtc.server import (
    BUSY_RETRY_S,
    OFFER_FAILED,
    ServerConfig,
    SessionRefusedError,
    WebRTCServer,
)

log = logging.getLogger(__name__)

NO_CAPACITY = ("no capacity: every avatar session host is full; try again in a few seconds "
               "(the cluster may be starting another host)")
NO_HOST_IN_TIME = ("no capacity: no session host could take the session in time; try again "
                   "in a few seconds")
HOST_LOST = "the session host was lost before it answered; try again"
IN_CLUSTER = ("this session runs on a cluster host: change its settings and avatar over the "
              "session's data channel (the page does)")
NO_SUCH_SESSION = "no such session (it ended)"
LOST_RETRY_S = 2
"""``Retry-After`` when a host was lost mid-answer (another one takes the retry)."""


class SessionStream(Protocol):
    """One session's items from its host (see the module docstring); ``cancel`` ends it."""

    def __aiter__(self) -> SessionStream: ...

    async def __anext__(self) -> dict[str, Any]: ...

    def cancel(self) -> None: ...


OpenStream = Callable[[dict[str, Any]], SessionStream]
"""Starts one session on a host with the offer ``{"sdp": ..., "type": "offer"}``.

It must not block; a refusal may come as `SessionRefusedError` from the stream's
first item (e.g. the cluster's own back-pressure) or as a refusal item.
"""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """How `ClusterGateway` treats its hosts.

    Attributes:
        capacity: sessions all hosts together may hold (the cluster's most
            hosts times the sessions each holds); more get ``NO_CAPACITY``.
        answer_timeout_s: longest wait for a host's answer, long enough for
            a host to start when the cluster scales up.
        heartbeat_timeout_s: a session whose host sent nothing this long is
            taken as lost (hosts send stats about every second).
        retry_after_s: ``Retry-After`` of the no-capacity answer.
    """

    capacity: int
    answer_timeout_s: float = 60.0
    heartbeat_timeout_s: float = 10.0
    retry_after_s: int = round(BUSY_RETRY_S)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"the capacity must be >= 1 session, got {self.capacity}")
        if not (self.answer_timeout_s > 0 and self.heartbeat_timeout_s > 0):
            raise ValueError("the answer and heartbeat timeouts must be > 0 s")


@dataclass(eq=False)
class RemoteSession:
    """A session the gateway answered for, while its host keeps it.

    ``replica`` names the host (for Ray Serve, its replica actor's name);
    ``stats`` is the host's last stats item, ``seen`` when anything came.
    """

    id: str
    replica: str
    stream: SessionStream
    seen: float = field(default_factory=time.monotonic)
    stats: dict[str, Any] = field(default_factory=dict)
    ended: str | None = None
    hung_up: bool = False
    task: asyncio.Task[None] | None = None

    def take(self, item: dict[str, Any]) -> None:
        """Note one item of the stream."""
        self.seen = time.monotonic()
        if isinstance(item.get("stats"), dict):
            self.stats = item["stats"]
        if isinstance(item.get("ended"), str):
            self.ended = item["ended"]


def refusal_item(refused: SessionRefusedError) -> dict[str, Any]:
    """The item a host yields instead of an answer (it pickles and JSON-encodes plainly)."""
    return {"error": refused.message, "status": refused.status,
            "retry_after": refused.retry_after_s}


def refusal_of(item: dict[str, Any]) -> SessionRefusedError | None:
    """The `SessionRefusedError` a refusal item stands for; ``None`` for any other item."""
    if "error" not in item:
        return None
    retry = item.get("retry_after")
    status = item.get("status")
    return SessionRefusedError(status if isinstance(status, int) else 500, str(item["error"]),
                               retry if isinstance(retry, int) else None)


class ClusterGateway(WebRTCServer):
    """A `WebRTCServer` whose sessions run on hosts reached by ``open_stream``.

    See the module docstring. ``remote`` holds the live sessions by id; its
    own ``sessions`` stay empty (no session runs in this process).
    """

    def __init__(self, config: ServerConfig, open_stream: OpenStream, gateway: GatewayConfig,
                 *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(config, clock=clock)
        self.gateway = gateway
        self.remote: dict[str, RemoteSession] = {}
        self.pending = 0
        self._open_stream = open_stream

    # ---- admission and answers ----------------------------------------------------
    def admission(self) -> SessionRefusedError | None:
        if len(self.remote) + self.pending >= self.gateway.capacity:
            return SessionRefusedError(503, NO_CAPACITY, self.gateway.retry_after_s)
        if self.pending >= self.config.max_pending:
            return SessionRefusedError(503, "the server is busy connecting other peers; try "
                                            "again in a few seconds", LOST_RETRY_S)
        return None

    async def _start_session(self, sdp: str) -> tuple[str, str]:
        self.pending += 1
        try:
            stream = self._open_stream({"sdp": sdp, "type": "offer"})
            item = await self._answer_of(stream)
        finally:
            self.pending -= 1
        remote = RemoteSession(str(item["session"]), str(item.get("replica", "")), stream)
        self.remote[remote.id] = remote
        remote.task = asyncio.create_task(self._drain(remote), name=f"{remote.id}:stream")
        log.info("session %s: answered by %s (%d in use)", remote.id, remote.replica,
                 len(self.remote))
        return remote.id, str(item["sdp"])

    async def _answer_of(self, stream: SessionStream) -> dict[str, Any]:
        """The host's answer item; `SessionRefusedError` for a refusal, a timeout or a lost host."""
        try:
            item = await asyncio.wait_for(anext(stream), self.gateway.answer_timeout_s)
        except SessionRefusedError:
            raise
        except TimeoutError:
            stream.cancel()
            raise SessionRefusedError(503, NO_HOST_IN_TIME, self.gateway.retry_after_s) from None
        except asyncio.CancelledError:  # the peer gave up waiting: nothing may stay open
            stream.cancel()
            raise
        except Exception as exc:  # StopAsyncIteration and whatever the host's death raises
            log.warning("a session host was lost before answering: %r", exc)
            stream.cancel()
            raise SessionRefusedError(503, HOST_LOST, LOST_RETRY_S) from None
        return _checked_answer(item, stream)

    def _answer_reply(self, session_id: str, answer: str) -> dict[str, Any]:
        remote = self.remote.get(session_id)
        replica = remote.replica if remote is not None else None
        return {**super()._answer_reply(session_id, answer), "replica": replica}

    # ---- the session's life --------------------------------------------------------
    async def _drain(self, remote: RemoteSession) -> None:
        """Read the stream to its end; then forget the session, saying why it ended."""
        try:
            reason = await self._follow(remote)
        except asyncio.CancelledError:
            remote.stream.cancel()
            raise
        finally:
            if self.remote.get(remote.id) is remote:
                del self.remote[remote.id]
        log.log(logging.INFO if remote.ended or remote.hung_up else logging.WARNING,
                "session %s on %s: %s (%d in use)", remote.id, remote.replica, reason,
                len(self.remote))

    async def _follow(self, remote: RemoteSession) -> str:
        timeout = self.gateway.heartbeat_timeout_s
        try:
            while True:
                remote.take(await asyncio.wait_for(anext(remote.stream), timeout))
        except StopAsyncIteration:
            return f"ended: {remote.ended or 'its host closed it'}"
        except TimeoutError:
            remote.stream.cancel()
            return f"lost: nothing from its host for {timeout:g} s"
        except Exception as exc:
            if remote.hung_up:
                return "ended: the peer hung up"
            return f"lost: its host failed ({type(exc).__name__})"

    async def hang_up(self, session_id: str, wait_s: float = 5.0) -> bool:
        """End a session (its host closes it); ``False`` when there is none by that id.

        Waits up to ``wait_s`` for the stream to end, so its slot is free on return.
        """
        remote = self.remote.get(session_id)
        if remote is None:
            return False
        remote.hung_up = True
        remote.stream.cancel()
        if remote.task is not None:
            await asyncio.wait({remote.task}, timeout=wait_s)
        return True

    async def close_all(self, reason: str = "the server is shutting down") -> None:
        log.info("closing %d cluster sessions: %s", len(self.remote), reason)
        await asyncio.gather(*(self.hang_up(sid) for sid in list(self.remote)))

    # ---- per-session routes ----------------------------------------------------------
    def _session(self, request: web.Request) -> NoReturn:
        """Settings and avatar routes: 409 for a live session (its channel does those)."""
        if request.match_info["sid"] in self.remote:
            raise web.HTTPConflict(text=_json_error(IN_CLUSTER), content_type="application/json")
        raise web.HTTPNotFound(text=_json_error(NO_SUCH_SESSION), content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        remote = self.remote.get(request.match_info["sid"])
        if remote is None:
            return web.json_response({"error": NO_SUCH_SESSION}, status=404)
        age = round(time.monotonic() - remote.seen, 1)
        return web.json_response({**remote.stats, "session": remote.id,
                                  "replica": remote.replica, "stats_age_s": age})

    async def _hang_up(self, request: web.Request) -> web.Response:
        session_id = request.match_info["sid"]
        if not await self.hang_up(session_id):
            return web.json_response({"error": NO_SUCH_SESSION}, status=404)
        return web.json_response({"closed": session_id})


def _checked_answer(item: Any, stream: SessionStream) -> dict[str, Any]:
    """``item`` if it is an answer; the refusal it carries, or a 500 for anything else."""
    refused = refusal_of(item) if isinstance(item, dict) else None
    if refused is not None:
        raise refused
    if isinstance(item, dict) and isinstance(item.get("sdp"), str) \
            and isinstance(item.get("session"), str):
        return item
    log.error("a session host answered something else than an answer: %.200r", item)
    with contextlib.suppress(Exception):
        stream.cancel()
    raise SessionRefusedError(500, OFFER_FAILED)


def _json_error(message: str) -> str:
    return json.dumps({"error": message})
