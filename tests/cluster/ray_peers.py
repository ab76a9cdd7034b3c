"""Peers and a gateway for the Ray tests: aiortc test peers that connect through the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from pipeline.app.cluster.command import open_gateway
from pipeline.app.cluster.config import ClusterConfig, ReplicaConfig
from pipeline.app.cluster.runtime import SessionHosts
from stages.webrtc.gateway import ClusterGateway
from stages.webrtc.server import ServerConfig, ServerThread
from tests.webrtc.peers import TestPeer


@dataclass
class Gateway:
    """A gateway serving in a thread: its server, base URL and thread (to read its state)."""

    server: ClusterGateway
    base: str
    thread: ServerThread

    def sessions(self) -> dict[str, str]:
        """The gateway's live sessions: id -> replica (read on its own loop)."""
        return self.thread.call(lambda: {k: v.replica for k, v in self.server.remote.items()})


def deployed_replicas(cluster: ClusterConfig) -> contextlib.AbstractContextManager[SessionHosts]:
    """``cluster`` deployed with identity replicas of two sessions each, on loopback."""
    from pipeline.app.cluster.runtime import deployed_hosts

    replica = ReplicaConfig(ServerConfig(ice_host="127.0.0.1", max_sessions=2, max_pending=2))
    return deployed_hosts(cluster, replica)


@contextlib.contextmanager
def serving_gateway(hosts: SessionHosts) -> Iterator[Gateway]:
    server = open_gateway(ServerConfig(port=0, max_pending=4, offer_burst=20), hosts)
    thread = ServerThread(server)
    with thread as url:
        yield Gateway(server, url.rstrip("/"), thread)


@contextlib.contextmanager
def running_gateway(hosts: SessionHosts, replicas: int) -> Iterator[Gateway]:
    """`serving_gateway` once ``replicas`` replicas of ``hosts`` are running."""
    wait_until(lambda: hosts.replica_states() == {"RUNNING": replicas}, limit_s=60)
    with serving_gateway(hosts) as served:
        yield served


@dataclass
class Call:
    """One test peer and what the gateway answered it."""

    peer: TestPeer
    status: int = 0
    reply: dict[str, Any] = field(default_factory=dict)
    answered_s: float = 0.0

    @property
    def session(self) -> str:
        return str(self.reply["session"])

    @property
    def replica(self) -> str:
        return str(self.reply["replica"])


async def post_offer(http: aiohttp.ClientSession, base: str,
                     sdp: str) -> tuple[int, dict[str, Any], str | None]:
    async with http.post(f"{base}/api/offer", json={"sdp": sdp, "type": "offer"}) as response:
        return response.status, await response.json(), response.headers.get("Retry-After")


async def call(http: aiohttp.ClientSession, base: str) -> Call:
    """A new peer's offer through the gateway; connected when the answer came (status 200)."""
    made = Call(TestPeer())
    started = time.monotonic()
    made.status, made.reply, _ = await post_offer(http, base, await made.peer.offer())
    made.answered_s = time.monotonic() - started
    if made.status == 200:
        await made.peer.accept(made.reply["sdp"])
    return made


@contextlib.asynccontextmanager
async def calls(base: str) -> AsyncIterator[tuple[aiohttp.ClientSession, list[Call]]]:
    """An HTTP client and a list the test fills with calls; every call hangs up at the end."""
    made: list[Call] = []
    async with aiohttp.ClientSession() as http:
        try:
            yield http, made
        finally:
            for one in made:
                if one.status == 200:
                    with contextlib.suppress(aiohttp.ClientError):
                        await http.delete(f"{base}/api/sessions/{one.session}")
                await one.peer.close()


async def until(predicate: Callable[[], Any], limit_s: float, step: float = 0.1) -> float:
    """Seconds until ``predicate()`` held; fails past ``limit_s``.

    The predicate runs off the loop: it may ask Ray, which blocks.
    """
    started = time.monotonic()
    while not await asyncio.to_thread(predicate):
        if time.monotonic() - started > limit_s:
            raise AssertionError(f"not reached within {limit_s:g} s")
        await asyncio.sleep(step)
    return time.monotonic() - started


def wait_until(predicate: Callable[[], Any], limit_s: float, step: float = 0.1) -> None:
    """`until` for code outside an event loop: poll ``predicate`` until it holds;
    fails past ``limit_s`` (a bound, not a measure)."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {limit_s:g} s")
        time.sleep(step)


async def frames(made: list[Call], limit_s: float = 30.0) -> None:
    """Wait until every call's peer got returned video."""
    await asyncio.wait_for(asyncio.gather(*(c.peer.got_frame.wait() for c in made)), limit_s)
