"""Autoscaling on a local Ray Serve cluster: a session that finds no room starts a replica.

One to two replicas of two sessions each, a short downscale delay: the third
session is answered once a second replica is up; when every session has
left, the cluster goes back to one replica.
"""

from __future__ import annotations

import pytest

from pipeline.app.cluster.config import ClusterConfig
from tests.webrtc.peers import run_on_loopback

pytestmark = pytest.mark.slow

CLUSTER = ClusterConfig(sessions_per_replica=2, min_replicas=1, max_replicas=2,
                        replica_cpus=0.5, upscale_delay_s=2.0, downscale_delay_s=2.0,
                        drain_timeout_s=5.0, app_name="vicocam-test-autoscaling")


def run(coro, limit_s: float = 150.0):
    return run_on_loopback(coro, limit_s)


@pytest.fixture(scope="module")
def hosts(ray_cluster):
    from tests.cluster.ray_peers import deployed_replicas

    with deployed_replicas(CLUSTER) as deployed:
        yield deployed


def test_a_third_session_starts_a_second_replica_and_idle_ones_go(hosts):
    from tests.cluster.ray_peers import call, calls, frames, serving_gateway, until

    async def scenario(base: str):
        async with calls(base) as (http, made):
            await until(lambda: hosts.replica_states() == {"RUNNING": 1}, limit_s=30)
            made += [await call(http, base) for _ in range(2)]
            await frames(made)
            alone = hosts.replica_states()
            made.append(await call(http, base))
            await frames(made)
            grown = hosts.replica_states()
        shrunk_s = await until(lambda: hosts.replica_states() == {"RUNNING": 1}, limit_s=60)
        return made, alone, grown, shrunk_s

    with serving_gateway(hosts) as gateway:
        made, alone, grown, shrunk_s = run(scenario(gateway.base))
    assert [c.status for c in made] == [200] * 3
    assert made[0].replica == made[1].replica and alone == {"RUNNING": 1}
    assert made[2].replica != made[0].replica and grown == {"RUNNING": 2}
    print(f"third session answered in {made[2].answered_s:.1f} s (a replica started); "
          f"back to one replica {shrunk_s:.1f} s after the last session left")
