"""Sessions on a local Ray Serve cluster: placement, a full cluster, a replica killed.

Two replicas of two sessions each (no model: ``--identity`` replicas), a
gateway in a thread and aiortc test peers, all on loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from pipeline.app.cluster.config import ClusterConfig
from tests.webrtc.peers import run_on_loopback

pytestmark = pytest.mark.slow

CLUSTER = ClusterConfig(sessions_per_replica=2, min_replicas=2, max_replicas=2,
                        replica_cpus=0.5, drain_timeout_s=5.0,
                        app_name="vicocam-test-sessions")


def run(coro, limit_s: float = 120.0):
    return run_on_loopback(coro, limit_s)


@pytest.fixture(scope="module")
def hosts(ray_cluster):
    from tests.cluster.ray_peers import deployed_replicas

    with deployed_replicas(CLUSTER) as deployed:
        yield deployed


@pytest.fixture
def gateway(hosts) -> Iterator:
    from tests.cluster.ray_peers import running_gateway

    with running_gateway(hosts, replicas=2) as served:
        yield served


def test_sessions_spread_over_the_replicas_and_a_full_cluster_says_no_capacity(hosts, gateway):
    from stages.webrtc.gateway import NO_CAPACITY
    from tests.cluster.ray_peers import call, calls, frames, post_offer
    from tests.webrtc.peers import TestPeer

    async def scenario():
        async with calls(gateway.base) as (http, made):
            made += [await call(http, gateway.base) for _ in range(4)]
            await frames(made)
            extra = TestPeer()
            started = time.monotonic()
            refused = await post_offer(http, gateway.base, await extra.offer())
            elapsed = time.monotonic() - started
            await extra.close()
            return made, refused, elapsed, gateway.sessions()

    made, (status, body, retry), elapsed, live = run(scenario())
    assert [c.status for c in made] == [200] * 4
    placed = Counter(c.replica for c in made)
    assert sorted(placed.values()) == [2, 2] and set(placed) == set(hosts.replica_names())
    assert live == {c.session: c.replica for c in made}
    assert status == 503 and body == {"error": NO_CAPACITY} and int(retry) >= 1
    assert elapsed < 2.0
    print(f"answers in {[round(c.answered_s, 2) for c in made]} s; no capacity in "
          f"{elapsed:.2f} s")


def test_a_killed_replica_loses_only_its_sessions_and_is_replaced(hosts, gateway):
    from tests.cluster.ray_peers import call, calls, frames, until

    async def scenario():
        async with calls(gateway.base) as (http, made):
            made += [await call(http, gateway.base) for _ in range(4)]
            await frames(made)
            victim = made[0].replica
            survivors = [c for c in made if c.replica != victim]
            before = [len(c.peer.returned) for c in survivors]
            names = set(hosts.replica_names())
            await asyncio.to_thread(hosts.kill, victim)
            forgotten_s = await until(
                lambda: set(gateway.sessions()) == {c.session for c in survivors}, limit_s=10)
            await until(lambda: all(len(c.peer.returned) > n + 15
                                    for c, n in zip(survivors, before, strict=True)), limit_s=10)
            replaced_s = await until(lambda: hosts.replica_states() == {"RUNNING": 2}
                                     and len(set(hosts.replica_names()) - names) == 1,
                                     limit_s=90)
            made.append(await call(http, gateway.base))
            await frames(made[-1:])
            return (victim, survivors, made[-1], forgotten_s, replaced_s, gateway.sessions(),
                    set(hosts.replica_names()) - names)

    victim, survivors, new, forgotten_s, replaced_s, live, replacement = run(scenario())
    assert forgotten_s < 5.0
    # The survivor is full: the new session lands on the replica Ray started instead.
    assert new.status == 200 and {new.replica} == replacement and victim not in replacement
    assert live == {**{c.session: c.replica for c in survivors}, new.session: new.replica}
    print(f"sessions of the killed replica forgotten in {forgotten_s:.1f} s; "
          f"replica replaced in {replaced_s:.1f} s more")
