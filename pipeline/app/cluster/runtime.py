"""Ray and Ray Serve for ``vicocam serve --cluster``: start or join a cluster, deploy the hosts.

The only module that imports Ray, and only inside its functions: `require_ray`
turns a missing Ray into a `UserError` naming the extra to install.

    with ray_runtime(RayConfig(node_ip="127.0.0.1")):
        with deployed_hosts(ClusterConfig(...), ReplicaConfig(server_config)) as hosts:
            gateway = ClusterGateway(config, hosts.open_stream, hosts.gateway_config())
            ...                              # serve it (`stages.webrtc.server.ServerThread`)
            hosts.replica_names()            # the live replicas' actor names
            hosts.kill(name)                 # a fault: Ray replaces the replica

`ray_runtime` starts a local Ray (or connects to ``address``) and Ray Serve
without its HTTP proxy (the gateway is the only way in); `deployed_hosts`
runs the ``SessionHost`` application and deletes it at the end.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pipeline.app.cluster.config import ClusterConfig, RayConfig, ReplicaConfig, deployment_options
from pipeline.app.cluster.replica import ServedSessionHost
from pipeline.errors import UserError
from stages.webrtc.gateway import NO_CAPACITY, GatewayConfig, SessionStream
from stages.webrtc.server import SessionRefusedError

DEPLOYMENT = "SessionHost"
REPLICA_NAMESPACE = "serve"
"""Ray Serve's namespace: its replica actors are named actors there."""
INSTALL_HINT = "pip install 'vicocam[cluster]'"


def require_ray(needed_by: str = "--cluster") -> tuple[ModuleType, ModuleType]:
    """``(ray, ray.serve)``; `UserError` naming ``needed_by`` and the extra to install
    when Ray is missing."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise UserError(f"{needed_by} needs Ray Serve, which is not installed ({exc}); "
                        f"install it with: {INSTALL_HINT}") from None
    return ray, serve


@contextlib.contextmanager
def ray_runtime(config: RayConfig) -> Iterator[None]:
    """Start (or join) Ray and start Ray Serve; stop what was started here on exit."""
    ray, serve = require_ray()
    try:
        ray.init(**_init_options(config))
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = config.address or "on this machine"
        raise UserError(f"cannot start or reach the Ray cluster ({where}): {exc}") from exc
    try:
        serve.start(proxy_location="Disabled")
        yield
    finally:
        if config.address is None:
            serve.shutdown()
        ray.shutdown()


def _init_options(config: RayConfig) -> dict[str, Any]:
    # "local": a new cluster, never one that RAY_ADDRESS or an earlier `ray start` names.
    options: dict[str, Any] = {"address": config.address or "local",
                               "log_to_driver": config.log_to_driver}
    if config.node_ip is not None:
        options["_node_ip_address"] = config.node_ip
    if config.address is None:  # only a cluster started here takes its size and dashboard
        options["num_cpus"] = config.num_cpus or os.cpu_count() or 1
        options["include_dashboard"] = False
    return options


@contextlib.contextmanager
def deployed_hosts(cluster: ClusterConfig, replica: ReplicaConfig) -> Iterator[SessionHosts]:
    """Run the hosts as the Ray Serve application ``cluster.app_name``; delete it on exit.

    Returns once ``min_replicas`` replicas are up (each has loaded its
    model); a replica that cannot start fails it with a `UserError`.
    """
    _, serve = require_ray()
    deployment = serve.deployment(ServedSessionHost, name=DEPLOYMENT)
    app = deployment.options(**deployment_options(cluster)).bind(replica)
    try:
        handle = serve.run(app, name=cluster.app_name, route_prefix=None)
    except Exception as exc:  # Ray raises RuntimeError or its own errors with the replica's
        raise UserError(f"the session hosts could not start: {exc}") from exc
    try:
        yield SessionHosts(handle, cluster)
    finally:
        serve.delete(cluster.app_name)


@dataclass(frozen=True, slots=True)
class SessionHosts:
    """The deployed hosts: open sessions on them, look at them, kill one (tests, benchmarks)."""

    handle: Any  # ray.serve.handle.DeploymentHandle
    cluster: ClusterConfig

    def open_stream(self, offer: dict[str, Any]) -> SessionStream:
        """One session on a replica with room (`stages.webrtc.gateway.OpenStream`)."""
        response = self.handle.options(stream=True).session.remote(offer)
        return RayStream(response, self.cluster)

    def gateway_config(self) -> GatewayConfig:
        """The gateway settings that fit these hosts (their capacity and answer timeout)."""
        return GatewayConfig(capacity=self.cluster.capacity,
                             answer_timeout_s=self.cluster.answer_timeout_s)

    def describe(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """A replica's `SessionHost.describe` (blocking: call it outside an event loop)."""
        return dict(self.handle.describe.remote().result(timeout_s=timeout_s))

    def replica_states(self) -> dict[str, int]:
        """How many replicas are in each state (``{"RUNNING": 2, "STARTING": 1}``)."""
        _, serve = require_ray()
        app = serve.status().applications.get(self.cluster.app_name)
        deployment = app.deployments.get(DEPLOYMENT) if app is not None else None
        return {str(k): v for k, v in (deployment.replica_states if deployment else {}).items()}

    def replica_names(self) -> list[str]:
        """The actor names of the replicas alive now (what answers carry as ``replica``)."""
        ray, _ = require_ray()
        prefix = f"SERVE_REPLICA::{self.cluster.app_name}#{DEPLOYMENT}#"
        actors = ray.util.list_named_actors(all_namespaces=True)
        return sorted(a["name"] for a in actors if a["name"].startswith(prefix))

    def kill(self, replica: str) -> None:
        """Kill one replica's actor at once (a fault); Ray Serve starts a new replica."""
        ray, _ = require_ray()
        ray.kill(ray.get_actor(replica, namespace=REPLICA_NAMESPACE), no_restart=True)


class RayStream:
    """A `SessionStream` over Ray Serve's streaming response of `SessionHost.session`.

    Ray's back-pressure (every replica full and its queue too) becomes the
    gateway's no-capacity 503.
    """

    def __init__(self, response: Any, cluster: ClusterConfig) -> None:
        self._response = response
        self._retry_s = max(1, round(cluster.upscale_delay_s) + 2)

    def __aiter__(self) -> RayStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        from ray.serve.exceptions import BackPressureError

        try:
            item = await self._response.__anext__()
        except BackPressureError:
            raise SessionRefusedError(503, NO_CAPACITY, self._retry_s) from None
        return dict(item)

    def cancel(self) -> None:
        self._response.cancel()
