import statistics

import numpy as np
import pytest

from pipeline.frame import Frame, StageTiming
from pipeline.legs import LegLog, frame_legs, service_ms
from pipeline.metrics import Metrics


def _frame(capture: int, admitted: int | None, trace: list[tuple[str, int, int]]) -> Frame:
    frame = Frame(seq=0, capture_ns=capture, image=np.zeros((2, 2, 3), np.uint8))
    frame.admitted_ns = admitted
    frame.trace = [StageTiming(name, start, end) for name, start, end in trace]
    return frame


MS = 1_000_000


def test_a_frame_s_legs_name_every_wait_and_stage_and_add_up_to_its_latency():
    frame = _frame(0, 2 * MS, [("track", 3 * MS, 7 * MS), ("generate", 10 * MS, 15 * MS)])
    names, values = frame_legs(frame, 16 * MS)
    assert names == ("head", "wait track", "track", "wait generate", "generate", "out")
    assert values == (2.0, 1.0, 4.0, 3.0, 5.0, 1.0)
    assert sum(values) == 16.0  # capture to delivery


def test_the_sources_own_work_is_a_leg_of_its_own_and_part_of_the_service():
    frame = _frame(0, 5 * MS, [("track", 6 * MS, 9 * MS)])
    frame.source_work = StageTiming("webrtc_in", 1 * MS, 3 * MS)
    legs = frame_legs(frame, 10 * MS)
    assert legs[0] == ("wait webrtc_in", "webrtc_in", "head", "wait track", "track", "out")
    assert legs[1] == (1.0, 2.0, 2.0, 1.0, 3.0, 1.0) and sum(legs[1]) == 10.0
    assert service_ms(legs) == 5.0


def test_a_frame_never_admitted_has_no_head_leg():
    names, values = frame_legs(_frame(0, None, [("a", 1 * MS, 2 * MS)]), 4 * MS)
    assert names == ("wait a", "a", "out") and sum(values) == 4.0


def test_the_log_keeps_the_last_frames_and_averages_each_leg_over_a_window():
    log = LegLog(keep=3)
    for i in range(5):  # the stage takes i ms; only frames 2, 3 and 4 are kept
        log.record(_frame(0, 0, [("a", 0, i * MS)]), i * MS)
    assert len(log) == 3
    assert log.means() == {"head": 0.0, "wait a": 0.0, "a": 3.0, "out": 0.0}
    assert log.means(last=1)["a"] == 4.0 and log.means(last=0) == {}
    with pytest.raises(ValueError, match="keep must be >= 1"):
        LegLog(keep=0)


def test_a_frames_service_is_its_stage_legs_without_the_waits():
    frame = _frame(0, 2 * MS, [("track", 3 * MS, 7 * MS), ("generate", 10 * MS, 15 * MS)])
    assert service_ms(frame_legs(frame, 16 * MS)) == 9.0
    log = LegLog(keep=4)
    for i in range(5):  # frame i: a 1 ms wait, then i ms of stage
        log.record(_frame(0, 0, [("a", 1 * MS, (1 + i) * MS)]), (1 + i) * MS)
    assert log.services_ms() == [1.0, 2.0, 3.0, 4.0]
    assert log.services_ms(last=2) == [3.0, 4.0]


def test_the_sum_of_stage_medians_undercounts_frames_slowed_in_one_stage_or_another():
    # Each frame waited for a core in a different stage: each stage's median is
    # 1 ms (sum 2 ms), but the median frame took 11 ms of stage time.
    log = LegLog()
    for a, b in ((1, 10), (1, 1), (10, 1)):
        log.record(_frame(0, 0, [("a", 0, a * MS), ("b", a * MS, (a + b) * MS)]), (a + b) * MS)
    assert sorted(log.services_ms()) == [2.0, 11.0, 11.0]
    assert statistics.median(log.services_ms()) == 11.0


def test_metrics_record_the_legs_of_every_delivered_frame():
    m = Metrics()
    m.record_out(_frame(0, 1 * MS, [("a", 1 * MS, 3 * MS)]), 5 * MS)
    assert m.to_dict()["legs_ms"] == {"head": 1.0, "wait a": 0.0, "a": 2.0, "out": 2.0}
