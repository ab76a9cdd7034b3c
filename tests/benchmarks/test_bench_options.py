"""``vicocam bench``: several runs become medians with their spread; the cores are split."""

from __future__ import annotations

from benchmarks.common import median_of_runs
from benchmarks.webrtc import pinned, split_cores
from pipeline.provenance import package_versions


def test_several_runs_give_medians_spreads_and_every_run():
    runs = [{"fps": 30.0, "p50": 40.0, "camera": "pattern", "ok": True},
            {"fps": 29.0, "p50": 55.0, "camera": "pattern", "ok": True},
            {"fps": 30.0, "p50": 45.0, "camera": "pattern", "ok": False}]
    merged = median_of_runs(runs)
    assert (merged["fps"], merged["p50"]) == (30.0, 45.0)
    assert merged["spread"] == {"fps": [29.0, 30.0], "p50": [40.0, 55.0]}
    assert merged["camera"] == "pattern" and merged["ok"] is True  # setup, not a figure
    assert merged["runs"] == runs


def test_versions_are_recorded():
    versions = package_versions()
    assert versions["numpy"] and versions["torch"]


def test_the_browser_and_the_server_get_different_cores():
    import os

    cores = split_cores()
    available = os.sched_getaffinity(0)
    if len(available) < 2:
        assert cores is None
        return
    assert cores is not None
    browser, server = cores
    assert set(browser) | set(server) == available and not set(browser) & set(server)
    with pinned(server):
        assert os.sched_getaffinity(0) == set(server)
    assert os.sched_getaffinity(0) == available
