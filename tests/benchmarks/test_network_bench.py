"""``vicocam bench network``'s figures from what a peer booked (the run itself: RESULTS)."""

from __future__ import annotations

import pytest

from benchmarks.network import (
    CONDITIONS,
    NetworkBenchConfig,
    condition_figures,
    fps_timeline,
    recovery,
    targets,
)
from stages.webrtc.impairment import parse_link


def steady(start: float, end: float, fps: float = 30.0, ms: float | None = 50.0):
    count = round((end - start) * fps)
    return [(start + i / fps, ms) for i in range(count)]


def call(frames, blackouts=()):
    return {"frames_sent": 600, "frames": frames, "blackouts": list(blackouts),
            "link": {"conditions": "x"}, "reassembly": {"plis_requested": 1}}


def test_a_steady_call_has_its_rate_no_gaps_and_its_latency():
    figures = condition_figures(call(steady(100.0, 120.0)), warmup_s=2.0)
    assert figures["fps"] == pytest.approx(30.0, rel=0.01)
    assert figures["gaps_over_200ms"] == figures["freezes_over_1s"] == 0
    assert figures["latency_p50_ms"] == 50.0 and figures["unreadable_frames"] == 0
    assert figures["reassembly"] == {"plis_requested": 1}


def test_a_blackout_counts_as_a_freeze_and_its_recovery_is_timed():
    frames = steady(100.0, 109.0) + steady(112.4, 120.0, ms=None)[:3] + steady(112.5, 120.0)
    figures = condition_figures(call(frames, [(109.0, 112.0)]), warmup_s=2.0)
    assert figures["freezes_over_1s"] == 1
    assert figures["longest_gap_s"] == pytest.approx(3.4, abs=0.05)
    assert figures["unreadable_frames"] == 3
    (back,) = figures["blackouts"]
    assert back == {"length_s": 3.0, "next_frame_s": 0.4, "next_readable_frame_s": 0.5}


def test_a_blackout_nothing_came_back_from_has_no_recovery():
    assert recovery(steady(0.0, 5.0), (5.0, 8.0))["next_frame_s"] is None
    assert condition_figures(call([]), 2.0) == {"frames_returned": 0, "fps": 0.0}


def test_fps_timeline_shows_the_dip():
    timeline = dict(fps_timeline(steady(0.0, 2.0) + steady(3.0, 4.0), origin=0.0))
    assert timeline[0.0] == 30.0 and timeline[2.0] == 0.0 and timeline[3.5] == 30.0


def test_targets_follow_the_issue():
    good = {"loss 2%": {"fps": 27.0, "freezes_over_1s": 0},
            "blackout 3 s": {"blackouts": [{"next_frame_s": 0.4}]}}
    assert all(t["met"] for t in targets(good).values())
    bad = {"loss 2%": {"fps": 24.0, "freezes_over_1s": 1},
           "blackout 3 s": {"blackouts": [{"next_frame_s": None}]}}
    assert not any(t["met"] for t in targets(bad).values())


def test_every_condition_reads_as_a_link_and_blackouts_need_room():
    config = NetworkBenchConfig()
    for _, template in CONDITIONS:
        parse_link(config.spec(template))
    assert parse_link(config.spec("blackout={at}s+3s")).blackouts == ((9.0, 3.0),)
    with pytest.raises(ValueError, match="needs >="):
        NetworkBenchConfig(seconds=10.0)
