"""Hand-off waits split into queueing and waking, on scripted stage times."""

import numpy as np
import pytest

from benchmarks.handoffs import FrameTimes, HandoffTap, handoff_figures
from pipeline.frame import Frame, StageTiming

MS = 1_000_000
SEGMENTS = [["a", "b"], ["c", "d"]]


def _times(admitted: int, **stages: tuple[int, int]) -> FrameTimes:
    return FrameTimes(admitted * MS, {k: (s * MS, e * MS) for k, (s, e) in stages.items()})


def test_a_wait_counts_as_queued_only_while_the_segment_was_busy_with_the_frame_before():
    frames = [
        _times(0, a=(1, 5), b=(5, 10), c=(12, 20), d=(20, 30)),  # nothing before: all waking
        # Admitted at 8 while "a, b" ran frame 1 until 10: 2 ms queued, no waking.
        # Ready for "c, d" at 18, busy with frame 1 until 30, started at 31: 12 queued of 13.
        _times(8, a=(10, 14), b=(14, 18), c=(31, 35), d=(35, 40)),
        _times(50, a=(51, 52), b=(52, 53)),  # filtered after "b": not in front of "c"
    ]
    figures = handoff_figures(frames, SEGMENTS)
    assert figures["a"] == pytest.approx(
        {"wait_ms": 4 / 3, "queued_ms": 2 / 3, "queued_share": 1 / 3})
    assert figures["c"] == pytest.approx({"wait_ms": 7.5, "queued_ms": 6.0, "queued_share": 0.5})


def test_a_segment_no_frame_reached_has_no_figures():
    assert handoff_figures([_times(0, a=(1, 2), b=(2, 3))], SEGMENTS)["c"] == {}


def test_the_tap_keeps_what_each_delivered_frame_did_and_passes_it_on():
    tap = HandoffTap(keep=2)
    for seq in range(3):
        frame = Frame(seq, 0, np.zeros((2, 2, 3), np.uint8))
        frame.admitted_ns = 10 * seq
        frame.trace.append(StageTiming("a", 10 * seq + 1, 10 * seq + 4))
        assert tap.process(frame) is frame
    assert tap.count == 3
    assert list(tap.frames) == [FrameTimes(10, {"a": (11, 14)}), FrameTimes(20, {"a": (21, 24)})]
