"""The runtime benchmarks run and account for every frame (figures are not asserted)."""

from benchmarks.runtime import bench_lossless, bench_overload, bench_pipelining


def test_overload_accounts_for_every_frame():
    figures = bench_overload(seconds=1.0, stage_ms=20.0, fps=60.0)
    assert figures["frames_in"] == figures["frames_out"] + figures["frames_dropped"]
    assert figures["frames_dropped"] > 0  # the source is faster than the stage


def test_pipelining_runs_every_frame_through_both_stages():
    figures = bench_pipelining(frames=10, stage_ms=2.0)
    assert figures["frames_out"] == 10
    assert set(figures["stage_ms_p50"]) == {"step1", "step2"}


def test_lossless_reads_the_count_and_order_back_from_pixels(tmp_path):
    figures = bench_lossless(frames=60, stage_ms=0.5, workdir=tmp_path)
    assert figures["frames_in_file"] == figures["frames_in"] == 60
    assert figures["order_preserved"] is True
