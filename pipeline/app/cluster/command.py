"""``vicocam serve --cluster``: the page and signalling here, the sessions on Ray Serve replicas.

Thin, like every command: it composes the configs from the arguments (all
user-fixable checks before Ray starts), starts or joins Ray, deploys the
hosts, serves the gateway until Ctrl-C or SIGTERM, then closes the sessions,
deletes the application and stops the Ray it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.app.cluster.config import ClusterConfig, RayConfig, ReplicaConfig
from pipeline.app.commands.serve import serve_config, server_config
from pipeline.app.real_faces import warn
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.app.cluster.runtime import SessionHosts
    from stages.webrtc.gateway import ClusterGateway
    from stages.webrtc.server import ServerConfig


def serve_cluster(args: argparse.Namespace) -> int:
    """Run ``vicocam serve --cluster`` (see the module docstring); 0 when stopped."""
    from pipeline.app.cluster.runtime import deployed_hosts, ray_runtime, require_ray
    from pipeline.app.commands.serve import announce
    from stages.webrtc.aiortc_patches import require_supported_aiortc

    require_ray()
    require_supported_aiortc()
    gateway_config = server_config(args)
    cluster = cluster_config(args)
    replica = replica_config(args, gateway_config, cluster)
    with ray_runtime(ray_config(args)), deployed_hosts(cluster, replica) as hosts:
        gateway = open_gateway(gateway_config, hosts)

        def ready(url: str) -> None:
            announce(url, gateway)
            _announce_cluster(cluster, args.cluster)

        try:
            if asyncio.run(_serve_until_stopped(gateway, ready)):
                raise KeyboardInterrupt  # Ctrl-C: the CLI's usual exit status 130
        except OSError as exc:
            raise UserError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
        finally:
            print("vicocam: stopping the session hosts...", file=sys.stderr)
    return 0


async def _serve_until_stopped(gateway: ClusterGateway, ready: Callable[[str], None]) -> bool:
    """Serve until Ctrl-C or SIGTERM (a service manager's stop): both end it cleanly.

    Both signals get explicit handlers on the loop rather than relying on the
    SIGINT disposition this process inherited (a parent that ignores SIGINT
    passes that on, and asyncio then installs no handler of its own). Returns
    True when Ctrl-C ended it.
    """
    from stages.webrtc.server import serve

    stop = asyncio.Event()
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        interrupted.set()
        stop.set()

    handlers = {signal.SIGTERM: stop.set, signal.SIGINT: on_sigint}
    for number, handler in handlers.items():
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not main
            loop.add_signal_handler(number, handler)
    try:
        await serve(gateway, ready=ready, stop=stop)
    finally:
        for number in handlers:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(number)
    return interrupted.is_set()


def open_gateway(config: ServerConfig, hosts: SessionHosts) -> ClusterGateway:
    """The gateway to ``hosts``, with the starting settings and notice a replica reports."""
    from stages.webrtc.gateway import ClusterGateway

    info = hosts.describe()
    warn(info["notice"])
    config = dataclasses.replace(config, settings=info["settings"], notice=info["notice"])
    return ClusterGateway(config, hosts.open_stream, hosts.gateway_config())


def cluster_config(args: argparse.Namespace) -> ClusterConfig:
    """The `ClusterConfig` of the arguments; `UserError` for invalid values."""
    gpus = args.replica_gpus
    if gpus is None:
        gpus = 1.0 if args.device.startswith("cuda") else 0.0
    try:
        return ClusterConfig(
            sessions_per_replica=args.sessions_per_replica, replica_cpus=args.replica_cpus,
            replica_gpus=gpus, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
            target_sessions=args.target_sessions, upscale_delay_s=args.upscale_delay,
            downscale_delay_s=args.downscale_delay, drain_timeout_s=args.drain_timeout,
            answer_timeout_s=args.answer_timeout)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def ray_config(args: argparse.Namespace) -> RayConfig:
    """Where Ray runs: ``--cluster ADDRESS``, or a local one on the served address.

    A local cluster's node is the bind address when that is loopback (all
    stays on this machine), else ``--ice-host`` when given, else Ray's pick.
    """
    from stages.webrtc.ice import is_loopback

    node_ip = "127.0.0.1" if is_loopback(args.host) else args.ice_host
    return RayConfig(address=args.cluster or None, node_ip=node_ip)


def replica_config(args: argparse.Namespace, gateway: ServerConfig,
                   cluster: ClusterConfig) -> ReplicaConfig:
    """What each replica builds: the served model and the gateway's session settings.

    The replica has no listener (no token, TLS or host names); its session
    limit is the sessions per replica, and so is its engines' largest batch.
    Paths are made absolute (the replica's working folder may differ; on
    other machines they must exist at the same place).
    """
    server = dataclasses.replace(
        gateway, host="127.0.0.1", port=0, token=None, tls=None, allowed_hosts=(),
        max_sessions=cluster.sessions_per_replica, max_pending=cluster.sessions_per_replica,
        avatars_dir=_absolute(gateway.avatars_dir))
    model = None if args.identity else serve_config(_replica_arguments(args, cluster))
    return ReplicaConfig(server, model)


def _replica_arguments(args: argparse.Namespace, cluster: ClusterConfig) -> argparse.Namespace:
    changed: dict[str, Any] = {
        "max_sessions": cluster.sessions_per_replica,
        "checkpoint": _absolute(args.checkpoint), "cache": _absolute(args.cache),
    }
    if args.avatar is not None and Path(args.avatar).is_file():
        changed["avatar"] = str(Path(args.avatar).resolve())
    if cluster.replica_gpus > 0 and args.device.startswith("cuda"):
        changed["device"] = "cuda:0"  # Ray gives each replica its own GPU(s) as the first ones
    return argparse.Namespace(**{**vars(args), **changed})


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else path.resolve()


def _announce_cluster(cluster: ClusterConfig, address: str) -> None:
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    print(f"vicocam: sessions run on {where}: {cluster.min_replicas}-{cluster.max_replicas} "
          f"replicas of {cluster.sessions_per_replica} sessions (Ray Serve application "
          f"'{cluster.app_name}'); at most {cluster.capacity} sessions at once", file=sys.stderr)
