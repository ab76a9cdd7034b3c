"""`pipeline.app.cluster.runtime` without a cluster: Ray's options, its errors as the gateway's."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ray.serve.exceptions", reason="ray[serve] is not installed")

from pipeline.app.cluster.config import ClusterConfig, RayConfig
from pipeline.app.cluster.runtime import RayStream, _init_options
from stages.webrtc.gateway import NO_CAPACITY
from stages.webrtc.server import SessionRefusedError


class Response:
    """A stand-in for Ray's streaming response: raises ``error`` on the first item."""

    def __init__(self, error: BaseException | None = None, item=None):
        self.error, self.item, self.cancelled = error, item, False

    async def __anext__(self):
        if self.error is not None:
            raise self.error
        return self.item

    def cancel(self):
        self.cancelled = True


def test_rays_back_pressure_is_the_gateways_no_capacity():
    from ray.serve.exceptions import BackPressureError

    full = BackPressureError(num_queued_requests=4, max_queued_requests=4)
    stream = RayStream(Response(full), ClusterConfig())
    with pytest.raises(SessionRefusedError) as refused:
        asyncio.run(anext(stream))
    assert (refused.value.status, refused.value.message) == (503, NO_CAPACITY)
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s >= 1


def test_items_and_cancel_pass_through():
    response = Response(item={"session": "s"})
    stream = RayStream(response, ClusterConfig())
    assert asyncio.run(anext(stream)) == {"session": "s"}
    stream.cancel()
    assert response.cancelled


def test_a_local_cluster_is_always_new_and_a_remote_one_is_joined_as_it_is():
    local = _init_options(RayConfig(node_ip="127.0.0.1", num_cpus=3))
    assert local["address"] == "local"  # never whatever RAY_ADDRESS or `ray start` names
    assert (local["num_cpus"], local["_node_ip_address"], local["include_dashboard"]) == (
        3, "127.0.0.1", False)
    remote = _init_options(RayConfig(address="10.0.0.1:6379"))
    assert remote == {"address": "10.0.0.1:6379", "log_to_driver": True}
