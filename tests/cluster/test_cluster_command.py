"""``vicocam serve --cluster``: its options, the configs they make, and one real run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.app.cli import build_parser, main
from pipeline.app.cluster.command import cluster_config, ray_config, replica_config
from pipeline.app.cluster.config import ClusterConfig, deployment_options
from pipeline.app.commands.serve import server_config
from pipeline.errors import UserError
from tests.conftest import REPO_ROOT


def serve_args(*extra: str):
    return build_parser().parse_args(["serve", "--cluster", *extra])


def test_without_ray_the_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert main(["serve", "--cluster", "--identity"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'vicocam[cluster]'" in err and "Traceback" not in err


def test_serving_without_cluster_imports_no_ray():
    code = ("import sys; from pipeline.app.cli import build_parser; "
            "build_parser().parse_args(['serve', '--cluster']); "
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


def test_the_options_make_the_cluster_config_and_rays_options():
    args = serve_args("auto", "--sessions-per-replica", "3", "--replica-cpus", "2",
                      "--min-replicas", "0", "--max-replicas", "5", "--downscale-delay", "7",
                      "--target-sessions", "2.5")
    cluster = cluster_config(args)
    assert cluster == ClusterConfig(sessions_per_replica=3, replica_cpus=2.0, replica_gpus=0.0,
                                    min_replicas=0, max_replicas=5, target_sessions=2.5,
                                    downscale_delay_s=7.0)
    options = deployment_options(cluster)
    assert options["max_ongoing_requests"] == 3 and options["max_queued_requests"] == 15
    assert options["ray_actor_options"] == {"num_cpus": 2.0, "num_gpus": 0.0}
    scaling = options["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"]) == (0, 5)
    assert scaling["target_ongoing_requests"] == 2.5 and scaling["downscale_delay_s"] == 7.0
    assert ray_config(args).address == "auto"


def test_a_bare_cluster_flag_starts_a_local_ray_on_the_served_address():
    assert ray_config(serve_args()).address is None
    assert ray_config(serve_args()).node_ip == "127.0.0.1"
    remote = serve_args("--host", "0.0.0.0", "--ice-host", "192.168.1.5", "--token", "t")
    assert ray_config(remote).node_ip == "192.168.1.5"
    assert cluster_config(serve_args()).target == 4.0  # the sessions per replica


def test_each_replica_gets_a_gpu_with_a_cuda_device_and_sees_it_first():
    args = serve_args("--device", "cuda:1", "--sessions-per-replica", "2", "--max-sessions", "9")
    cluster = cluster_config(args)
    assert cluster.replica_gpus == 1.0
    replica = replica_config(args, server_config(args), cluster)
    assert replica.model is not None and replica.model.model.device == "cuda:0"
    assert replica.model.model.max_batch == 2  # one engine call carries a replica's sessions
    assert cluster_config(serve_args("--device", "cuda", "--replica-gpus", "0.5")
                          ).replica_gpus == 0.5


def test_a_replica_has_no_listener_but_the_gateways_session_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets").mkdir()
    args = serve_args("--identity", "--host", "0.0.0.0", "--token", "s3cret", "--stun",
                      "stun:stun.example:3478", "--avatars", "presets", "--ice-host", "10.0.0.2",
                      "--sessions-per-replica", "3")
    gateway = server_config(args)
    replica = replica_config(args, gateway, cluster_config(args))
    assert replica.model is None
    server = replica.server
    assert (server.host, server.token, server.tls) == ("127.0.0.1", None, None)
    assert (server.max_sessions, server.max_pending) == (3, 3)
    assert server.session == gateway.session and server.ice_host == "10.0.0.2"
    assert server.avatars_dir == tmp_path / "presets" and server.avatars_dir.is_absolute()


@pytest.mark.parametrize("extra, message", [
    (("--min-replicas", "3", "--max-replicas", "2"), "--min-replicas"),
    (("--target-sessions", "5"), "--target-sessions"),
])
def test_inconsistent_cluster_options_are_user_errors(extra, message):
    with pytest.raises(UserError, match=message):
        cluster_config(serve_args(*extra))


# ---- one real run ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_line(process: subprocess.Popen, pattern: str, limit_s: float) -> list[str]:
    """stderr lines until one matches ``pattern``; fails when the process ends or time is up."""
    lines: list[str] = []
    deadline = time.monotonic() + limit_s
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stderr.readline()
        if not line:
            time.sleep(0.1)
            continue
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(lines)}")


def drain(process: subprocess.Popen) -> tuple[threading.Thread, list[str]]:
    """Keep reading the process's stderr into a list, so a full pipe never blocks it."""
    assert process.stderr is not None
    stream = process.stderr
    os.set_blocking(stream.fileno(), True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    reader.start()
    return reader, lines


@pytest.mark.slow
def test_serve_cluster_serves_a_client_and_stops_cleanly_on_ctrl_c(ray_usable, tmp_path, capsys):
    port = free_port()
    command = [sys.executable, "-m", "pipeline.app", "serve", "--cluster", "--identity",
               "--port", str(port), "--ice-host", "127.0.0.1", "--sessions-per-replica", "1",
               "--max-replicas", "1", "--replica-cpus", "0.5", "--drain-timeout", "5"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        lines = wait_for_line(process, r"sessions run on a local Ray cluster", limit_s=120)
        reader, later = drain(process)
        code = main(["client", "--server", f"http://127.0.0.1:{port}", "--source",
                     "pattern:160x120@30", "--sink", str(tmp_path / "back.mp4"),
                     "--seconds", "2", "--ice-host", "127.0.0.1", "--no-reconnect"])
        process.send_signal(signal.SIGINT)
        try:
            exit_code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop within 60 s of Ctrl-C; it logged:\n"
                        + "".join(lines + later))
        reader.join(timeout=10)
        rest = "".join(later)
    finally:
        if process.poll() is None:
            process.kill()
    out = capsys.readouterr().out
    assert code == 0 and "received" in out
    assert any(f"open http://127.0.0.1:{port}/" in line for line in lines)
    assert exit_code == 130 and "Traceback" not in "".join(lines) + rest
    assert Path(tmp_path / "back.mp4").stat().st_size > 0
