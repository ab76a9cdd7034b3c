"""``vicocam bench cluster``'s figures from recorded phases (the run: tests/cluster, RESULTS)."""

from __future__ import annotations

import sys

import pytest

from benchmarks.cluster import ClusterBenchConfig, plot_cluster
from benchmarks.cluster_figures import (
    PhaseLog,
    cluster_figures,
    fps_timeline,
    longest_gap,
    phase_figures,
)
from benchmarks.registry import BenchOptions
from pipeline.errors import UserError

JOINED, MARK, ENDED = 100.0, 105.0, 120.0
LOST = "nothing from the server for 3 s"


def ticks(start: float, end: float, fps: float) -> list[float]:
    return [start + i / fps for i in range(round((end - start) * fps))]


def call(session: str, started: float, first: float | None, last: float | None = None,
         ended: float | None = None, reason: str | None = None) -> dict:
    return {"started": started, "session": session, "first_frame": first, "last_frame": last,
            "ended": ended, "reason": reason}


def peer(calls: list[dict], spans: list[tuple[float, float]], fps: float = 15.0,
         ms: float | None = None) -> dict:
    """A peer whose camera ran at 30 fps from 95 s and got ``fps`` back within ``spans``."""
    frames = [(t, ms) for a, b in spans for t in ticks(a, b, fps)]
    return {"calls": calls, "frames": frames, "reads": ticks(95.0, ENDED, 30.0), "error": None}


def stats(seen: float, dropped: int) -> dict:
    return {"seen": seen, "stats": {"drops": {"generate": dropped}, "frames_replaced": 5}}


def phase(killed: bool, back_at: float | None = 109.2, placed: tuple[str, ...] = "AABB",
          survivor_spans: tuple[tuple[float, float], ...] = ((97.0, ENDED),)) -> PhaseLog:
    """Peers 0, 1 on ``placed``'s replicas; with a kill, A's peers lose video at the mark
    and call again (video back at ``back_at``, or never)."""
    log = PhaseLog(killed=killed, replicas=["A", "B"], joined=JOINED, mark=MARK, ended=ENDED,
                   victim="A", replaced=MARK + 8.0 if killed else None)
    for i, replica in enumerate(placed):
        session = f"s{i}"
        log.placement[session] = replica
        if killed and replica == "A":
            calls = [call(session, 96.0, 96.5, MARK, MARK + 3.0, LOST),
                     call(f"{session}b", MARK + 3.0, back_at, None, ENDED)]
            log.placement[f"{session}b"] = "B"
            spans = [(96.5, MARK)] + ([(back_at, ENDED)] if back_at else [])
        else:
            calls = [call(session, 96.0, 96.5 + i / 10, ENDED, ENDED, "the run ended")]
            spans = [(96.5 + i / 10, ENDED)] if replica == "A" else list(survivor_spans)
        log.peers.append(peer(calls, spans))
        if replica == "B":
            log.stats_at_mark[session] = stats(MARK - 0.5, 10)
            log.stats_at_end[session] = stats(ENDED - 0.5, 100)
    return log


def test_placement_first_frames_and_fps_come_from_each_peer_s_first_call():
    figures = phase_figures(phase(killed=False))
    assert figures["sessions_per_replica"] == {"A": 2, "B": 2}
    assert figures["first_frame_s"] == [0.5, 0.6, 0.7, 0.8]
    assert figures["fps_min"] == pytest.approx(15.0, abs=0.1)
    assert figures["killed_replica"] is None and "reconnects" not in figures


def test_a_killed_replica_s_peers_are_timed_from_the_kill_to_their_next_video():
    figures = phase_figures(phase(killed=True))
    assert figures["killed_replica"] == "A"
    assert figures["replacement_running_after_s"] == pytest.approx(8.0)
    row = figures["reconnects"][0]
    assert row["back_s"] == pytest.approx(4.2) and row["video_gap_s"] == pytest.approx(4.2)
    assert row["lost_after_s"] == pytest.approx(3.0) and row["lost_because"] == LOST
    assert row["video_after_loss_s"] == pytest.approx(1.2)
    assert row["on"] == "B" and row["tries"] == 1
    assert figures["reconnect_p50_s"] == figures["reconnect_max_s"] == pytest.approx(4.2)
    killed = figures["killed_replica_sessions"]
    assert killed["longest_gap_s"] == pytest.approx(4.2, abs=0.1)
    assert killed["policy_window"] is None  # a dead replica gives no stats


def test_the_other_replica_s_losses_are_split_into_the_live_policy_s_and_the_rest():
    other = phase_figures(phase(killed=True))["other_replica_sessions"]
    # 30 fps captured, 15 back for 15 s, two sessions:
    assert (other["captured"], other["returned"], other["lost"]) == (900, 450, 450)
    assert other["lost_ratio"] == 0.5 and other["unstamped"] == 450
    assert other["latency_p50_ms"] is None
    window = other["policy_window"]  # from the stats at 104.5 to those at 119.5
    assert window["captured"] == 902 and window["replica_drops"] == 180
    assert window["lost_beyond_policy"] == window["captured"] - window["returned"] - 180


def test_targets_hold_when_the_kill_changes_nothing_for_the_other_replica():
    figures = cluster_figures(phase(killed=False), phase(killed=True))
    assert figures["all_targets_met"], figures["targets"]
    targets = figures["targets"]
    assert targets["sessions_per_replica_spread"] == {"value": 0, "limit": 0, "met": True}
    assert targets["other_replica_lost_beyond_policy_increase"]["value"] == 0.0
    assert targets["first_frame_p95_s"]["value"] == pytest.approx(0.8, abs=0.01)


def test_targets_miss_a_peer_never_back_a_lopsided_placement_and_a_frozen_survivor():
    frozen = ((97.0, 106.0), (110.0, ENDED))
    kill = phase(killed=True, back_at=None, placed=tuple("AAAB"), survivor_spans=frozen)
    figures = cluster_figures(phase(killed=False), kill)
    targets = figures["targets"]
    assert not targets["reconnect_max_s"]["met"] and targets["reconnect_max_s"]["value"] is None
    assert targets["sessions_per_replica_spread"]["value"] == 2
    assert not targets["other_replica_lost_beyond_policy_increase"]["met"]
    assert not figures["all_targets_met"]


def test_a_replica_that_took_no_session_counts_as_zero():
    log = phase(killed=False, placed=tuple("BBBB"))
    assert phase_figures(log)["sessions_per_replica"] == {"A": 0, "B": 4}


def test_gaps_count_the_window_edges_and_the_timeline_whole_bins():
    assert longest_gap([101.0, 102.0], 100.0, 110.0) == pytest.approx(8.0)
    assert longest_gap([], 100.0, 103.0) == pytest.approx(3.0)
    assert fps_timeline(ticks(0.0, 2.0, 10.0), 0.0, 1.9) == [(0.0, 10.0), (0.5, 10.0),
                                                            (1.0, 10.0)]


def test_the_chart_is_written(tmp_path):
    path = plot_cluster((phase(killed=False), phase(killed=True)), tmp_path / "cluster.png")
    assert path.stat().st_size > 1000


def test_config_sizes_replicas_so_the_survivors_can_hold_every_session():
    assert ClusterBenchConfig().sessions_per_replica == 4
    assert ClusterBenchConfig(sessions=8).sessions_per_replica == 8
    assert ClusterBenchConfig(sessions=6, replicas=3).sessions_per_replica == 4
    with pytest.raises(ValueError, match="2 replicas"):
        ClusterBenchConfig(replicas=1)
    with pytest.raises(ValueError, match="per phase"):
        ClusterBenchConfig(seconds=10.0)


def test_the_bench_runs_what_serve_cluster_composes_from_its_arguments():
    from pipeline.app.cli import build_parser
    from pipeline.app.cluster.command import cluster_config, ray_config

    config = ClusterBenchConfig(replicas=3, identity=True)
    args = build_parser().parse_args(config.serve_arguments())
    cluster = cluster_config(args)
    assert (cluster.min_replicas, cluster.max_replicas, cluster.sessions_per_replica) == (3, 3, 4)
    assert ray_config(args).node_ip == "127.0.0.1" and ray_config(args).address is None


def test_bad_options_and_a_missing_ray_are_user_errors(monkeypatch):
    from benchmarks.entry import cluster

    with pytest.raises(UserError, match="2 replicas"):
        cluster(BenchOptions(replicas=1))
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.serve", None)
    with pytest.raises(UserError, match=r"^bench cluster needs Ray Serve.*vicocam\[cluster\]"):
        cluster(BenchOptions())
