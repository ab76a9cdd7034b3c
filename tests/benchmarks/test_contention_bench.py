"""The contention benchmark measures both limiters and says where frames spent their time."""

import math

import pytest

from benchmarks.contention import run_contention_bench
from benchmarks.registry import BENCHMARKS


def test_each_limiter_is_measured_with_its_legs_and_the_ratios_between_them():
    figures = run_contention_bench(seconds=1.0, counts=(0,), driver="person", stage_threads=8)
    assert figures["stage_threads"] == 8
    row = figures["burners_0"]
    for limiter in ("adaptive", "fixed"):
        run = row[limiter]
        assert run["output_fps"] > 0 and math.isfinite(run["latency_p50_ms"])
        assert run["stages_p50_sum_ms"] > 0
        assert run["latency_p50_vs_stages"] == run["latency_p50_ms"] / run["stages_p50_sum_ms"]
        # The same frames' own service: each frame's is part of its latency.
        assert 0 < run["service_p50_ms"] <= run["latency_p50_ms"]
        assert run["latency_p50_vs_service"] == run["latency_p50_ms"] / run["service_p50_ms"]
        assert {"head", "wait face_track", "wait generate", "generate", "out"} <= set(
            run["legs_ms"])
        # Latency ends at the sink; the loop counts each frame later, and the
        # same frames stamped there (the earlier ruler) are given beside it.
        assert run["legs_ms"]["out"] == 0.0
        assert run["count_lag_p50_ms"] > 0
        assert run["latency_p50_counted_ms"] > run["latency_p50_ms"]
        assert run["latency_p50_counted_vs_stages"] == (run["latency_p50_counted_ms"]
                                                        / run["stages_p50_sum_ms"])
        # In front of each worker segment: a wait, part of it behind the frame before.
        handoffs = run["handoffs"]
        assert {"face_track", "generate"} <= set(handoffs)
        for split in handoffs.values():
            assert 0 <= split["queued_ms"] <= split["wait_ms"]
            assert 0 <= split["queued_share"] <= 1
        share = run["in_flight_limit_share"]
        assert sum(share.values()) == pytest.approx(1.0)
        assert run["in_flight_limit_p50"] in share
    fixed = row["fixed"]
    assert fixed["in_flight_limit_share"][fixed["in_flight_limit_last"]] == 1.0
    assert row["adaptive_fps_vs_fixed"] == row["adaptive"]["output_fps"] / row["fixed"][
        "output_fps"]


def test_bench_passes_stage_threads_to_the_benchmarks_that_take_them(monkeypatch):
    import benchmarks.contention as contention
    from pipeline.app.cli import main

    seen = {}

    def fake(seconds, stage_threads, counts=contention.BURNERS):
        seen.update(seconds=seconds, stage_threads=stage_threads, counts=counts)
        return {"fixed": 1.0}

    monkeypatch.setattr(contention, "run_contention_bench", fake)
    assert "contention" in BENCHMARKS
    assert main(["bench", "contention", "--seconds", "2", "--stage-threads", "8"]) == 0
    assert seen == {"seconds": 2.0, "stage_threads": 8, "counts": (0, 1, 2, 6)}
    assert main(["bench", "contention", "--seconds", "2", "--burner-counts", "6,2,6"]) == 0
    assert seen["counts"] == (2, 6)


@pytest.mark.parametrize("bad", ["two", "--burner-counts=-1,2", ""])
def test_bad_burner_counts_are_refused_before_anything_runs(bad, capsys):
    from pipeline.app.cli import main

    args = [bad] if bad.startswith("--") else ["--burner-counts", bad]
    assert main(["bench", "contention", *args]) == 2
    assert "--burner-counts" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["webrtc", "webrtc-face", "webrtc-model"])
def test_bench_passes_the_limiter_and_threads_to_the_webrtc_benchmarks(monkeypatch, name):
    import benchmarks.webrtc as webrtc
    from pipeline.app.cli import main

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return {"fps": 30.0}

    monkeypatch.setattr(webrtc, "run_webrtc_bench", fake)
    assert main(["bench", name, "--seconds", "2", "--no-pin", "--stage-threads", "3",
                 "--no-adaptive-in-flight", "--thawed-heap", "--encode-in", "aiortc",
                 "--burners", "2"]) == 0
    knobs = ("pin", "stage_threads", "adaptive_in_flight", "freeze_heap", "encode_in_sink",
             "burners")
    assert tuple(seen[k] for k in knobs) == (False, 3, False, False, False, 2)
    assert main(["bench", name, "--seconds", "2"]) == 0
    assert tuple(seen[k] for k in knobs) == (True, None, True, True, True, 0)


def test_negative_burners_are_refused_before_anything_runs(capsys):
    from pipeline.app.cli import main

    assert main(["bench", "webrtc", "--burners", "-1"]) != 0
    assert "--burners" in capsys.readouterr().err


def test_burners_run_for_the_block_and_are_gone_after():
    import multiprocessing

    from benchmarks.burners import burners

    with burners(2):
        children = multiprocessing.active_children()
        burning = [c for c in children if c.name.startswith("burner-")]
        assert len(burning) == 2 and all(c.is_alive() for c in burning)
    assert not any(c.is_alive() for c in burning)
    with pytest.raises(ValueError), burners(-1):
        pass
