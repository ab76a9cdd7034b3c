"""``vicocam bench cluster --json PATH``: sessions on a local Ray Serve cluster, one replica killed.

What ``vicocam serve --cluster`` runs, composed from its own arguments, all
on this machine: a local Ray on 127.0.0.1, ``replicas`` replicas of the
bundled model (``--min-replicas`` = ``--max-replicas``, so every replica
has loaded its model before the first offer) and the gateway in a thread of
this process. ``sessions`` ``vicocam client`` peers (`benchmarks.cluster_peers`,
in a process of their own) join through the gateway one after another and
then run together for ``seconds``, twice:

1. no kill: nothing happens; the window from ``kill_at_s`` after the last
   join to the end is the baseline;
2. kill: ``kill_at_s`` after the last join the replica holding the most
   peers is killed (`SessionHosts.kill`). Its peers hear nothing from it for
   the client's heartbeat timeout, call again through the gateway and land
   on a replica with room, while Ray starts a replacement.

Each replica holds enough sessions (`ClusterBenchConfig.sessions_per_replica`)
for the survivors to take every session of the killed one, as ``serve
--cluster``'s defaults (4 per replica) do for 4 sessions, so a reconnect
does not wait for the replacement's model to load. `benchmarks.cluster_figures`
makes the figures: sessions per replica, offer to first frame p50/p95,
per-session fps, reconnect p50/max, and what the other replica's sessions
lost in the window with and without the kill, with the targets. A chart
beside the JSON shows each group's mean fps per session over both phases.

Ray must reach nothing beyond this machine: run the benchmark inside a
loopback-only network namespace (``unshare -n``; see
``tests/cluster/conftest.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.cluster_figures import PhaseLog, cluster_figures, group_timeline
from benchmarks.cluster_peers import PeerPlan, peers_main

if TYPE_CHECKING:
    from argparse import Namespace

    from pipeline.app.cluster.runtime import SessionHosts
    from stages.webrtc.gateway import ClusterGateway
    from stages.webrtc.server import ServerConfig, ServerThread

LOOPBACK = "127.0.0.1"
PER_REPLICA = 4
"""``serve --cluster``'s sessions per replica; more when the survivors need it."""
AFTER_KILL_S = 10.0
"""Least time a phase runs after its mark: the client's heartbeat timeout and a reconnect."""
POLL_S = 0.25
START_TIMEOUT_S = 180.0
APP_NAME = "vicocam-bench"
Live = dict[str, tuple[str, dict[str, Any]]]
"""The gateway's live sessions: id -> (replica, ``{"seen": t, "stats": its last stats}``)."""


@dataclass(frozen=True, slots=True)
class ClusterBenchConfig:
    """Knobs of `run_cluster_bench`.

    Attributes:
        sessions: peers in each phase.
        replicas: Ray Serve replicas (>= 2: one is killed, the others stay).
        seconds: each phase, from the last join to the end.
        kill_at_s: the kill (and the no-kill phase's mark), after the last join.
        camera: the peers' synthetic camera: width, height, fps.
        identity: replicas without a model (``serve --identity``; tests).
        join_timeout_s: longest wait for one joining peer's first frame.
        settle_s: pause between the phases, once the first one's sessions closed.
    """

    sessions: int = 4
    replicas: int = 2
    seconds: float = 20.0
    kill_at_s: float = 5.0
    camera: tuple[int, int, int] = (320, 240, 30)
    identity: bool = False
    join_timeout_s: float = 60.0
    settle_s: float = 2.0

    def __post_init__(self) -> None:
        if self.replicas < 2 or self.sessions < 1:
            raise ValueError(f"bench cluster needs >= 2 replicas (one is killed) and >= 1 "
                             f"session, got {self.replicas} and {self.sessions}")
        if self.seconds < self.kill_at_s + AFTER_KILL_S:
            raise ValueError(f"bench cluster needs >= {self.kill_at_s + AFTER_KILL_S:g} s per "
                             f"phase (the kill at {self.kill_at_s:g} s, then time to reconnect)")

    @property
    def sessions_per_replica(self) -> int:
        """``serve --cluster``'s 4, or enough for the survivors of a kill to hold everyone."""
        return max(PER_REPLICA, math.ceil(self.sessions / (self.replicas - 1)))

    def serve_arguments(self) -> list[str]:
        """The ``vicocam serve --cluster`` command line this benchmark runs."""
        n = str(self.replicas)
        return ["serve", "--cluster", "--host", LOOPBACK, "--port", "0", "--ice-host", LOOPBACK,
                "--min-replicas", n, "--max-replicas", n,
                "--sessions-per-replica", str(self.sessions_per_replica),
                *(["--identity"] if self.identity else [])]


def run_cluster_bench(config: ClusterBenchConfig | None = None, json_path: Path | None = None,
                      *, ray_running: bool = False) -> dict[str, Any]:
    """Both phases on one cluster; flat figures, a chart beside ``json_path``.

    ``ray_running``: deploy on the Ray this process already runs (a test's)
    instead of starting a local one.
    """
    from pipeline.app.cli import build_parser
    from pipeline.app.cluster.command import ray_config
    from pipeline.app.cluster.runtime import ray_runtime, require_ray

    config = config or ClusterBenchConfig()
    require_ray("bench cluster")
    args = build_parser().parse_args(config.serve_arguments())
    ray = dataclasses.replace(ray_config(args), log_to_driver=False,
                              num_cpus=max(os.cpu_count() or 1, config.replicas))
    with contextlib.nullcontext() if ray_running else ray_runtime(ray):
        logs = measure(args, config)
    result = {"benchmark": "cluster", **_setup(config), **cluster_figures(*logs)}
    if json_path is not None:
        result["chart"] = plot_cluster(logs, json_path.with_suffix(".png")).name
    return result


def measure(args: Namespace, config: ClusterBenchConfig) -> tuple[PhaseLog, PhaseLog]:
    """On a running Ray: deploy the replicas, serve the gateway, run both phases."""
    from pipeline.app.cluster.command import cluster_config, open_gateway, replica_config
    from pipeline.app.cluster.runtime import deployed_hosts
    from stages.webrtc.aiortc_patches import require_supported_aiortc
    from stages.webrtc.server import ServerThread

    require_supported_aiortc()
    gateway_config = _gateway_config(args, config)
    cluster = dataclasses.replace(cluster_config(args), app_name=APP_NAME)
    replica = replica_config(args, gateway_config, cluster)
    with deployed_hosts(cluster, replica) as hosts:
        _until(lambda: hosts.replica_states() == {"RUNNING": config.replicas}, START_TIMEOUT_S)
        gateway = open_gateway(gateway_config, hosts)
        thread = ServerThread(gateway)
        with thread as url:
            watch = GatewayWatch(thread, gateway)
            calm = run_phase(PhaseRun(url, hosts, watch, config), killed=False)
            _until(lambda: not watch.read(), 30.0)  # the first phase's sessions closed
            time.sleep(config.settle_s)
            return calm, run_phase(PhaseRun(url, hosts, watch, config), killed=True)


def _gateway_config(args: Namespace, config: ClusterBenchConfig) -> ServerConfig:
    """``serve``'s gateway settings; every peer here calls from one address, so its offer
    burst is raised (real peers each have their own address and burst)."""
    from pipeline.app.commands.serve import server_config

    return dataclasses.replace(server_config(args), offer_burst=4 * config.sessions + 4)


def _setup(config: ClusterBenchConfig) -> dict[str, Any]:
    """What the figures were measured on (the peers' client settings are `vicocam client`'s)."""
    from importlib.metadata import version

    from stages.webrtc.client import ClientConfig

    client = ClientConfig(server=f"http://{LOOPBACK}")
    width, height, fps = config.camera
    return {"server": "vicocam " + " ".join(config.serve_arguments()), "ray": version("ray"),
            "model": "identity (no model)" if config.identity else "the bundled model",
            "replicas": config.replicas, "sessions": config.sessions,
            "sessions_per_replica_limit": config.sessions_per_replica,
            "seconds_per_phase": config.seconds, "kill_at_s": config.kill_at_s,
            "camera": f"synthetic held-out person {width}x{height} at {fps} fps, stamped",
            "client_heartbeat_timeout_s": client.heartbeat_timeout_s,
            "client_reconnect": client.reconnect}


class GatewayWatch:
    """The gateway's live sessions (`Live`), read on its own loop."""

    def __init__(self, thread: ServerThread, gateway: ClusterGateway) -> None:
        self.thread = thread
        self.gateway = gateway

    def read(self) -> Live:
        remote = self.gateway.remote
        live: Live = self.thread.call(lambda: {
            k: (v.replica, {"seen": v.seen, "stats": dict(v.stats)}) for k, v in remote.items()})
        return live


@dataclass(frozen=True, slots=True)
class PhaseRun:
    """What a phase runs against: the gateway's URL, the replicas and the gateway's sessions."""

    url: str
    hosts: SessionHosts
    watch: GatewayWatch
    config: ClusterBenchConfig


def run_phase(run: PhaseRun, killed: bool) -> PhaseLog:
    """One phase (see the module docstring): the peers' records and what the gateway saw."""
    config = run.config
    log = PhaseLog(killed=killed)
    plan = PeerPlan(run.url, config.sessions, config.seconds, config.camera,
                    config.join_timeout_s)
    with PeerProcess(plan) as peers:
        def note() -> Live:
            live = run.watch.read()
            log.placement.update({s: replica for s, (replica, _) in live.items()})
            if log.killed and log.mark and log.replaced is None:
                note_replacement(log, run.hosts, config.replicas)
            return live

        log.joined = peers.expect("joined", config.sessions * config.join_timeout_s + 60, note)
        log.replicas = run.hosts.replica_names()
        peers.idle_until(log.joined + config.kill_at_s, note)
        mark(log, note(), run.hosts)
        log.ended = peers.expect("ending", config.seconds + 60, note)
        log.stats_at_end = {s: stats for s, (_, stats) in note().items()}
        log.peers = peers.expect("done", 60.0, lambda: None)
    return log


def mark(log: PhaseLog, live: Live, hosts: SessionHosts) -> None:
    """The phase's mark: the busiest replica is the victim, killed in the kill phase."""
    busiest = Counter(replica for replica, _ in live.values()).most_common()
    log.victim = min(name for name, n in busiest if n == busiest[0][1]) if busiest else None
    log.stats_at_mark = {s: stats for s, (_, stats) in live.items()}
    log.mark = time.monotonic()
    if log.killed and log.victim is not None:
        hosts.kill(log.victim)
        print(f"bench cluster: killed {log.victim}", flush=True)


def note_replacement(log: PhaseLog, hosts: SessionHosts, replicas: int) -> None:
    """Note when Ray has replaced the killed replica: a new one, and every one running."""
    if hosts.replica_states() != {"RUNNING": replicas}:
        return
    if set(hosts.replica_names()) - set(log.replicas):
        log.replaced = time.monotonic()


class PeerProcess:
    """The peers' process of one phase, seen from here: ``with PeerProcess(plan) as peers``."""

    def __init__(self, plan: PeerPlan) -> None:
        context = multiprocessing.get_context("spawn")  # this process has threads: no fork
        self._conn, self._theirs = context.Pipe()
        self._process = context.Process(target=peers_main, args=(self._theirs, plan),
                                        name="cluster-peers", daemon=True)

    def __enter__(self) -> PeerProcess:
        self._process.start()
        self._theirs.close()
        return self

    def expect(self, kind: str, timeout_s: float, poll: Callable[[], Any]) -> Any:
        """The next message, which must be ``{kind: value}``; ``poll()`` runs while waiting."""
        deadline = time.monotonic() + timeout_s
        while not self._conn.poll(POLL_S):
            poll()
            if not self._process.is_alive() and not self._conn.poll():
                raise RuntimeError(f"the peers' process ended (exit {self._process.exitcode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the peers said nothing for {timeout_s:g} s (want {kind})")
        try:
            message: dict[str, Any] = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"the peers' process ended (exit {self._process.exitcode}) "
                               f"before it said {kind}") from None
        if kind not in message:
            raise RuntimeError(f"the peers said {list(message)}, want {kind}")
        return message[kind]

    def idle_until(self, when: float, poll: Callable[[], Any]) -> None:
        while time.monotonic() < when:
            poll()
            time.sleep(min(POLL_S, max(0.0, when - time.monotonic())))

    def __exit__(self, *exc: object) -> None:
        self._conn.close()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)


def _until(predicate: Callable[[], bool], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench cluster: the cluster was not ready within {limit_s:g} s")
        time.sleep(POLL_S)


def plot_cluster(logs: tuple[PhaseLog, PhaseLog], path: Path) -> Path:
    """Mean returned fps per session of each group over each phase; the mark (the kill, or
    the same moment without one) drawn upright, its replica's sessions as one line."""
    from benchmarks.chart import Series, line_chart

    panels = []
    for log in logs:
        lines = [Series("marked replica", group_timeline(log, "killed")),
                 Series("other replica", group_timeline(log, "other"))]
        top = max((y for line in lines for _, y in line.points), default=1.0)
        at = log.mark - log.joined
        lines.append(Series("kill" if log.killed else "mark", [(at, 0.0), (at, top)]))
        title = "kill phase" if log.killed else "no-kill phase (the same replica marked)"
        panels.append((title, lines, None))
    return line_chart(path, panels, x_label="seconds from the last join")
