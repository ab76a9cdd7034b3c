"""The live benchmark runs the avatar path and reports the figures it promises."""

import math

from benchmarks.live import LiveBenchConfig, run_live_bench
from benchmarks.registry import BENCHMARKS
from trt_engines.backends import BackendName
from trt_engines.bundle import ModelSpec


def test_live_bench_reports_rate_latency_drops_and_the_bare_loop(tmp_path, monkeypatch):
    monkeypatch.setenv("VICOCAM_CACHE", str(tmp_path))
    model = ModelSpec(backend=BackendName.TORCH)
    figures = run_live_bench(0.5, LiveBenchConfig(driver="person", model=model, bare_frames=8))
    for key in ("output_fps", "latency_p50_ms", "latency_p95_ms", "bare_loop_fps",
                "throughput_vs_bare_loop", "stage_generate_p50_ms", "stage_motion_p50_ms"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    assert figures["frames_out"] > 0 and figures["frames_failed"] == 0
    assert figures["frames_in"] == figures["frames_out"] + figures["frames_dropped"]
    assert "head" in figures["drops_by_edge"]
    # Where the steady frames' time went, leg by leg: the legs add up to their mean latency.
    legs = figures["legs_ms"]
    assert {"head", "wait face_track", "face_track", "generate", "out"} <= set(legs)
    assert all(ms >= 0 for ms in legs.values()) and legs["generate"] > 0
    assert figures["trained"] is ("random weights" not in figures["model"])


def test_live_is_registered():
    assert BENCHMARKS["live"].load().__name__ == "live"


def test_the_shared_clip_is_served_as_640x480_at_30_fps_and_loops(shared_media):
    from benchmarks.live import FramedClip

    source = FramedClip(shared_media / "driving2.mp4", frames=3)
    info = source.open()
    got = [source.read() for _ in range(4)]
    source.close()
    assert (info.width, info.height, info.frame_rate) == (640, 480, 30)
    assert all(g is not None and g.image.shape == (480, 640, 3) for g in got)
    assert [g.pts for g in got if g is not None] == [0, 1, 2, 3]
    first, again = got[0], got[3]
    assert first is not None and again is not None
    assert (first.image == again.image).all()  # three frames decoded, then it loops
    assert source.read() is None  # closed
