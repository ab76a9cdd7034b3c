"""The typed configs of ``vicocam serve --cluster``: where Ray runs, how hosts scale, what they run.

Plain frozen dataclasses, importable without Ray: the command line builds
them, `pipeline.app.cluster.runtime` hands them to Ray (a `ReplicaConfig`
travels pickled to every replica), and `deployment_options` is the one
place they become Ray Serve's deployment options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.app.serving import ServeConfig
    from stages.webrtc.server import ServerConfig

METRICS_INTERVAL_S = 1.0
"""How often replicas and the gateway's handle report their sessions to Ray's autoscaler."""
LOOK_BACK_S = 2.0
"""The autoscaler's averaging window: a new session counts within about this long."""
HEALTH_CHECK_PERIOD_S = 2.0
"""How often Ray's controller checks each replica (a dead one is replaced after it)."""
CONSTRUCTOR_RETRIES = 3
"""Attempts at starting a replica before the deployment fails (a bad checkpoint fails fast)."""


@dataclass(frozen=True, slots=True)
class RayConfig:
    """Where the Ray cluster is.

    Attributes:
        address: a running cluster (``auto``, or ``HOST:PORT`` of
            ``ray start --head``); ``None`` = start a local one here, stopped
            again at the end.
        node_ip: the local cluster's node address (what its replicas are
            reached by); ``None`` = Ray finds one.
        num_cpus: the local cluster's CPUs; ``None`` = the machine's cores.
        log_to_driver: show the replicas' logs here.
    """

    address: str | None = None
    node_ip: str | None = None
    num_cpus: int | None = None
    log_to_driver: bool = True


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How the session hosts run as the Ray Serve deployment ``SessionHost``.

    One session is one long-lived streaming request to one replica, so Ray
    Serve's own router and autoscaler do the placement: a replica takes at
    most ``sessions_per_replica`` (``max_ongoing_requests``), and replicas
    scale between ``min_replicas`` and ``max_replicas`` to keep about
    ``target`` live sessions each.

    Attributes:
        sessions_per_replica: sessions one replica (one model) holds.
        replica_cpus, replica_gpus: each replica's Ray resources
            (``ray_actor_options``; fractions allowed).
        min_replicas, max_replicas: the autoscaling bounds.
        target_sessions: sessions per replica the autoscaler aims at; ``None``
            = ``sessions_per_replica``, so a replica is added when a session
            waits for room (Ray wants ``ceil(sessions / target)`` replicas:
            any lower target adds one before the last slot is taken, which
            buys headroom at the price of an idle replica).
        upscale_delay_s, downscale_delay_s: how long a want to scale must
            last before it happens.
        drain_timeout_s: how long a replica that is scaled down (or deleted)
            waits for its live sessions to end before it is stopped with them.
        answer_timeout_s: the gateway's longest wait for an answer, long
            enough for a replica to start (a model load) when scaling up.
        app_name: the Ray Serve application's name.
    """

    sessions_per_replica: int = 4
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    min_replicas: int = 1
    max_replicas: int = 2
    target_sessions: float | None = None
    upscale_delay_s: float = 1.0
    downscale_delay_s: float = 60.0
    drain_timeout_s: float = 600.0
    answer_timeout_s: float = 60.0
    app_name: str = "vicocam"

    def __post_init__(self) -> None:
        if self.sessions_per_replica < 1:
            raise ValueError(f"--sessions-per-replica must be >= 1, "
                             f"got {self.sessions_per_replica}")
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(f"need 0 <= --min-replicas <= --max-replicas and "
                             f"--max-replicas >= 1, got {self.min_replicas} and "
                             f"{self.max_replicas}")
        if self.replica_cpus < 0 or self.replica_gpus < 0:
            raise ValueError("--replica-cpus and --replica-gpus must be >= 0")
        if not 0 < self.target <= self.sessions_per_replica:
            raise ValueError(f"--target-sessions must be > 0 and <= --sessions-per-replica "
                             f"({self.sessions_per_replica}), got {self.target}")

    @property
    def target(self) -> float:
        """Sessions per replica the autoscaler aims at."""
        if self.target_sessions is None:
            return float(self.sessions_per_replica)
        return self.target_sessions

    @property
    def capacity(self) -> int:
        """Sessions all replicas together hold at most."""
        return self.max_replicas * self.sessions_per_replica


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """What every replica builds: exactly what ``vicocam serve`` builds from these.

    Attributes:
        server: the replica's `WebRTCServer` settings (no listener: only its
            session, ICE and admission settings apply; its session limit is
            the sessions per replica).
        model: the model every session of the replica shares (loaded once
            per replica, with its cross-session batcher); ``None`` = no
            model (``--identity``).
    """

    server: ServerConfig
    model: ServeConfig | None = None


def deployment_options(cluster: ClusterConfig) -> dict[str, Any]:
    """Ray Serve's options of the ``SessionHost`` deployment (`serve.deployment(...).options`).

    ``max_queued_requests`` is a backstop: the gateway refuses offers past
    the capacity itself; an offer Ray still refuses (`BackPressureError`)
    gets the same 503.
    """
    return {
        "max_ongoing_requests": cluster.sessions_per_replica,
        "max_queued_requests": cluster.capacity,
        "autoscaling_config": {
            "min_replicas": cluster.min_replicas,
            "max_replicas": cluster.max_replicas,
            "target_ongoing_requests": cluster.target,
            "upscale_delay_s": cluster.upscale_delay_s,
            "downscale_delay_s": cluster.downscale_delay_s,
            "metrics_interval_s": METRICS_INTERVAL_S,
            "look_back_period_s": LOOK_BACK_S,
        },
        "ray_actor_options": {"num_cpus": cluster.replica_cpus,
                              "num_gpus": cluster.replica_gpus},
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "graceful_shutdown_timeout_s": cluster.drain_timeout_s,
        "max_constructor_retry_count": CONSTRUCTOR_RETRIES,
    }
