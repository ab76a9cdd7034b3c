"""Adapters from ``vicocam bench NAME [--seconds S] [--no-pin]`` to each benchmark's knobs."""

from __future__ import annotations

from typing import Any

from benchmarks.registry import BenchOptions


def overhead(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.runtime import bench_overhead

    # ~1.5 ms per frame through 8 threaded hops: scale the frame count to the time asked.
    frames = 600 if seconds is None else max(100, int(seconds * 400))
    return bench_overhead(stages=8, frames=frames)


def overload(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.runtime import bench_overload

    return bench_overload(seconds=seconds or 15.0)


def pipelining(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.runtime import bench_pipelining

    frames = 150 if seconds is None else max(30, int(seconds * 25))
    return bench_pipelining(frames=frames)


def lossless(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.runtime import bench_lossless

    frames = 1200 if seconds is None else max(1000, int(seconds * 100))
    return bench_lossless(frames=frames)


def live(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.live import LiveBenchConfig, run_live_bench

    config = LiveBenchConfig() if options.model is None else LiveBenchConfig(model=options.model)
    return run_live_bench(seconds=seconds or 20.0, config=config)


def sessions(options: BenchOptions) -> dict[str, Any]:
    from benchmarks.sessions import SessionsBenchConfig, run_sessions_bench

    config = SessionsBenchConfig()
    changes: dict[str, Any] = {"seconds": options.seconds or config.seconds,
                               "max_sessions": options.max_sessions or config.max_sessions,
                               "model": options.model or config.model,
                               "adaptive_in_flight": options.adaptive_in_flight}
    return run_sessions_bench(SessionsBenchConfig(**changes), options.json_path)


def backends(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.live import run_backend_bench

    # Two engines per backend at ~5-50 ms a call: scale the calls to the time asked.
    return run_backend_bench(frames=60 if seconds is None else max(10, int(seconds * 5)))


def camera_loss(options: BenchOptions) -> dict[str, Any]:
    from benchmarks.camera_loss import run_camera_loss_bench

    # `seconds` is how long the camera stays unplugged; 2 s before and 2 s after add to it.
    return run_camera_loss_bench(seconds=options.seconds or 5.0)


def track(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.common import shared_media_dir
    from benchmarks.track import run_track_bench
    from pipeline.errors import UserError

    media = shared_media_dir()
    if not (media / "driving1.mp4").exists():
        raise UserError(
            f"the tracking benchmark needs the real clips in {media}; "
            "set VICOCAM_SHARED to the folder that holds media/"
        )
    return run_track_bench(media, seconds=seconds or 12.0)


def webrtc(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.webrtc import run_webrtc_bench

    # Measured seconds after a 3 s warm-up; the browser start and the clip add ~10 s.
    return run_webrtc_bench(seconds=seconds or 30.0, stage="identity", **_webrtc_knobs(options))


def webrtc_face(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.webrtc import run_webrtc_bench

    return run_webrtc_bench(seconds=seconds or 30.0, stage="identity", camera="person",
                            **_webrtc_knobs(options))


def webrtc_model(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.webrtc import MODEL, run_webrtc_bench

    return run_webrtc_bench(seconds=seconds or 30.0, stage=MODEL, **_webrtc_knobs(options))


def _webrtc_knobs(options: BenchOptions) -> dict[str, Any]:
    """The options every WebRTC benchmark passes on as they are."""
    return {"pin": options.pin, "stage_threads": options.stage_threads,
            "adaptive_in_flight": options.adaptive_in_flight,
            "freeze_heap": options.freeze_heap, "encode_in_sink": options.encode_in_sink,
            "burners": options.burners}


def flood(options: BenchOptions) -> dict[str, Any]:
    from benchmarks.flood import FloodBenchConfig, run_flood_bench

    # `seconds` is how long the flood lasts; start-up, the late peer and the probes add ~25 s.
    return run_flood_bench(FloodBenchConfig(seconds=options.seconds or 10.0))


def network(options: BenchOptions) -> dict[str, Any]:
    from benchmarks.network import NetworkBenchConfig, run_network_bench

    # `seconds` is each condition's call; six conditions and start-up make ~7x that.
    link = options.mode or "user"
    config = NetworkBenchConfig(link=link)
    if options.seconds is not None:
        config = NetworkBenchConfig(seconds=options.seconds, link=link)
    return run_network_bench(config, options.json_path)


def model(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.model import run_model_bench

    # The budget is for timed frames; exporting and checking the six models adds ~4 min.
    return run_model_bench(seconds=seconds)


def train(options: BenchOptions) -> dict[str, Any]:
    seconds = options.seconds
    from benchmarks.train import run_train_bench

    return run_train_bench(seconds)


def contention(options: BenchOptions) -> dict[str, Any]:
    from benchmarks.contention import run_contention_bench

    # Each burner count x two limiters, measured for `seconds` after a warm-up.
    if options.burner_counts is None:
        return run_contention_bench(seconds=options.seconds or 12.0,
                                    stage_threads=options.stage_threads)
    return run_contention_bench(seconds=options.seconds or 12.0,
                                stage_threads=options.stage_threads, counts=options.burner_counts)


def soak(options: BenchOptions) -> dict[str, Any]:
    from dataclasses import replace

    from benchmarks.soak import SoakConfig, run_soak
    # serve's (or run's) own model and defaults: the soak ignores the bench's model options.
    config = SoakConfig(mode=options.mode or "serve")
    if options.seconds is not None:
        config = replace(config, seconds=options.seconds)
    return run_soak(config, options.json_path)


def cluster(options: BenchOptions) -> dict[str, Any]:
    from dataclasses import replace

    from benchmarks.cluster import ClusterBenchConfig, run_cluster_bench
    from pipeline.errors import UserError

    # `seconds` is each phase's; Ray's start, the model loads and the joins add ~1 min.
    changes: dict[str, Any] = {"seconds": options.seconds, "sessions": options.sessions,
               "replicas": options.replicas}
    try:
        config = replace(ClusterBenchConfig(),
                         **{k: v for k, v in changes.items() if v is not None})
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return run_cluster_bench(config, options.json_path)
