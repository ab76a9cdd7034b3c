"""``vicocam bench sessions``: both modes run as serve builds them, and the chart is drawn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks import sessions as sessions_bench
from benchmarks.sessions import (
    ReplayClip,
    SessionsBenchConfig,
    _first_miss,
    _largest_held,
    measure,
    plot_sessions,
    render_clip,
)
from trt_engines.bundle import ModelSpec, open_bundle


def _row(sessions: int, mode: str, holds: bool) -> dict:
    return {"sessions": sessions, "mode": mode, "holds": holds, "fps_min": 30.0 if holds else 20.0,
            "latency_p95_ms": 50.0 if holds else 150.0}


def test_the_largest_held_count_stops_at_the_first_miss():
    rows = [_row(1, "batched", True), _row(2, "batched", True), _row(3, "batched", False),
            _row(4, "batched", True), _row(1, "unbatched", False)]
    assert _largest_held(rows, "batched") == 2  # a lucky 4 after a miss does not count
    assert _largest_held(rows, "unbatched") == 0


def test_the_first_miss_says_which_goal_was_missed_and_by_how_much():
    rows = [{**_row(1, "batched", True), "fps_mean": 30.0, "latency_p50_ms": 20.0},
            {**_row(2, "batched", False), "fps_min": 28.6, "fps_mean": 29.4,
             "latency_p50_ms": 31.0, "latency_p95_ms": 55.0},
            {**_row(3, "batched", False), "fps_mean": 25.0, "latency_p50_ms": 90.0}]
    assert _first_miss(rows, "batched") == {
        "sessions": 2, "fps_min": 28.6, "fps_mean": 29.4, "latency_p50_ms": 31.0,
        "latency_p95_ms": 55.0, "missed": ["fps_min"]}
    slow = [{**_row(1, "unbatched", False), "fps_min": 29.5, "fps_mean": 30.0,
             "latency_p50_ms": 80.0}]
    assert _first_miss(slow, "unbatched")["missed"] == ["latency_p95_ms"]
    assert _first_miss(rows[:1], "batched") is None  # held at every N tried


def test_a_replayed_clip_loops_copies_and_counts_time():
    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(3)]
    clip = ReplayClip(frames, fps=30)
    info = clip.open()
    assert (info.width, info.height, info.self_paced) == (6, 4, False)
    got = [clip.read() for _ in range(4)]
    assert [int(f.image[0, 0, 0]) for f in got if f] == [0, 1, 2, 0]
    assert got[0] is not None and got[0].image is not frames[0]  # stages may write into it
    assert [f.pts for f in got if f] == [0, 1, 2, 3]


def test_the_chart_shows_both_modes(tmp_path: Path):
    rows = [_row(n, m, n < 3) for n in (1, 2, 3) for m in ("batched", "unbatched")]
    path = plot_sessions(rows, tmp_path / "sessions.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0]
    colours = {tuple(int(c) for c in px) for px in image.reshape(-1, 3)[::7]}
    assert (200, 90, 30) in colours and (40, 120, 230) in colours  # one line per mode


def test_the_command_writes_figures_and_a_chart(tmp_path: Path):
    out = tmp_path / "sessions.json"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.app", "bench", "sessions", "--seconds", "1",
         "--max-sessions", "1", "--no-adaptive-in-flight", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    modes = {row["mode"] for row in figures["conditions"]}
    assert modes == {"batched", "unbatched"}
    for row in figures["conditions"]:
        assert row["sessions"] == 1 and row["fps_mean"] > 0 and row["cpu_ms_per_frame"] > 0
        assert row["batch_size_p50"] == 1  # a lone session is never batched with anyone
    assert figures["backend"] == "onnxruntime"
    assert figures["adaptive_in_flight"] is False  # the option reached the sessions
    assert "one_session_p50_batched_minus_unbatched_ms" in figures
    for mode in ("batched", "unbatched"):  # one session at most: held, or missed at 1
        miss = figures[f"first_miss_{mode}"]
        assert miss is None or miss["sessions"] == 1
    assert set(figures["batcher_ms_per_call_alone"]) == {"motion", "generate"}
    assert set(figures["engine_ms_per_frame_by_batch"]["generate"]) == {"1", "2", "4"}
    assert figures["batch_max_wait_ms"] == 0.0  # the CPU default: no waiting
    assert (tmp_path / figures["chart"]).is_file()


@pytest.mark.parametrize("adaptive", [True, False])
def test_the_sessions_run_the_limiter_asked_for(monkeypatch: pytest.MonkeyPatch, adaptive: bool):
    ran = []
    real = sessions_bench._run_all

    async def recording(pipelines):
        ran.extend(pipelines)
        return await real(pipelines)

    monkeypatch.setattr(sessions_bench, "_run_all", recording)
    bundle = open_bundle(ModelSpec())
    try:
        config = SessionsBenchConfig(seconds=0.5, adaptive_in_flight=adaptive)
        row = measure(config, bundle, render_clip(8), 2, "unbatched")
    finally:
        bundle.close()
    assert row["sessions"] == 2 and len(ran) == 2
    assert all((p.in_flight_controller is not None) is adaptive for p in ran)
