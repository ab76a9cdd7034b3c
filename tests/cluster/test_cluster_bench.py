"""``vicocam bench cluster`` end to end on the test's Ray: identity replicas, short phases.

Checks the figures are there and hang together, not how fast anything was:
the timed figures are the benchmark's (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_the_cluster_bench_writes_both_phases_and_its_targets(ray_cluster, tmp_path):
    from benchmarks.cluster import ClusterBenchConfig, run_cluster_bench
    from benchmarks.common import write_result

    config = ClusterBenchConfig(identity=True, seconds=12.0, kill_at_s=2.0)
    figures = run_cluster_bench(config, tmp_path / "cluster.json", ray_running=True)
    record = json.loads(write_result(figures, None, name="cluster", command="test"))

    assert record["model"] == "identity (no model)" and record["machine"]["cpus"]
    assert (tmp_path / record["chart"]).is_file()
    for name in ("no_kill", "kill"):
        phase = record["phases"][name]
        assert sum(phase["sessions_per_replica"].values()) == 4 and not phase["errors"]
        assert all(s is not None for s in phase["first_frame_s"])
        assert phase["other_replica_sessions"]["returned"] > 0
        assert phase["other_replica_sessions"]["latency_p50_ms"] is not None  # stamps kept
    kill = record["phases"]["kill"]
    assert kill["killed_replica"] in kill["sessions_per_replica"]
    assert kill["reconnects"] and all(r["back_s"] is not None for r in kill["reconnects"])
    assert kill["killed_replica"] not in {r["on"] for r in kill["reconnects"]}
    assert set(record["targets"]) == {
        "sessions_per_replica_spread", "first_frame_p95_s", "reconnect_max_s",
        "other_replica_lost_beyond_policy_increase", "other_replica_calls_lost"}
