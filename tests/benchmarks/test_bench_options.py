"""``vicocam bench``: several runs become medians with their spread; the cores are split."""

from __future__ import annotations

import pytest

from benchmarks.common import median_of_runs
from benchmarks.webrtc import pinned, split_cores
from pipeline.provenance import CpuTimes, cpu_shares, package_versions, parse_cpu_times


def test_several_runs_give_medians_spreads_and_every_run():
    runs = [{"fps": 30.0, "p50": 40.0, "camera": "pattern", "ok": True},
            {"fps": 29.0, "p50": 55.0, "camera": "pattern", "ok": True},
            {"fps": 30.0, "p50": 45.0, "camera": "pattern", "ok": False}]
    merged = median_of_runs(runs)
    assert (merged["fps"], merged["p50"]) == (30.0, 45.0)
    assert merged["spread"] == {"fps": [29.0, 30.0], "p50": [40.0, 55.0]}
    assert merged["camera"] == "pattern" and merged["ok"] is True  # setup, not a figure
    assert merged["runs"] == runs


def test_figures_nested_in_dicts_get_medians_too():
    runs = [{"burners_6": {"fixed": {"fps": 27.4, "mode": "a"}, "ratio": 0.63}},
            {"burners_6": {"fixed": {"fps": 27.09, "mode": "a"}, "ratio": 0.94}},
            {"burners_6": {"fixed": {"fps": 25.61, "mode": "a"}, "ratio": 0.8}}]
    merged = median_of_runs(runs)
    assert merged["burners_6"] == {"fixed": {"fps": 27.09, "mode": "a"}, "ratio": 0.8}
    assert merged["spread"] == {"burners_6.fixed.fps": [25.61, 27.4],
                                "burners_6.ratio": [0.63, 0.94]}
    assert runs[0]["burners_6"]["ratio"] == 0.63  # the runs are kept as they were


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


STAT = """cpu  100 5 20 900 10 1 2 30 7 0
cpu0 50 2 10 450 5 0 1 15 3 0
intr 12345
"""


def test_the_machines_cpu_time_is_read_from_proc_stat():
    times = parse_cpu_times(STAT)
    # busy: user + nice + system + irq + softirq (guest time is inside user)
    assert times == CpuTimes(busy=128, idle=910, steal=30)
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        parse_cpu_times("cpu0 1 2 3 4\n")


def test_shares_say_how_the_time_between_two_readings_went():
    before = CpuTimes(busy=100, idle=900, steal=0)
    after = CpuTimes(busy=250, idle=930, steal=20)
    assert cpu_shares(before, after) == {"cpu_busy_share": 0.75, "cpu_idle_share": 0.15,
                                         "cpu_steal_share": 0.1}
    assert cpu_shares(after, after) == {}


def test_every_run_records_how_the_machines_time_went(monkeypatch):
    from pipeline.app.commands import bench

    readings = iter([CpuTimes(0, 0, 0), CpuTimes(60, 30, 10)])
    monkeypatch.setattr("pipeline.provenance.cpu_times", lambda: next(readings))
    figures = bench._timed_run(lambda options: {"fps": 30.0}, None)  # type: ignore[arg-type]
    assert figures == {"fps": 30.0, "cpu_busy_share": 0.6, "cpu_idle_share": 0.3,
                       "cpu_steal_share": 0.1}


def test_a_run_with_stolen_cpu_time_is_flagged():
    from pipeline.app.commands.bench import steal_warning

    assert steal_warning(0.01, 1, 1) is None and steal_warning(None, 1, 1) is None
    warning = steal_warning(0.124, 2, 3)
    assert warning is not None and "run 2 of 3" in warning and "12.4%" in warning
    assert "this run" in (steal_warning(0.05, 1, 1) or "")
