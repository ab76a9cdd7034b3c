import os
import threading

import numpy as np
import pytest

from pipeline.clock import ManualClock
from pipeline.frame import Frame
from pipeline.runtime import Pipeline, RunMode, RuntimeConfig, default_in_flight, run_pipeline
from pipeline.segments import Segment, plan_segments, run_segment
from pipeline.stage import StageBase
from tests.pipeline.helpers import Collect, FailOn, ListSource


class Named(StageBase):
    """A blocking (or not) stage that records the threads it ran on."""

    def __init__(self, name: str, blocking: bool = True, returns_none: bool = False) -> None:
        self.name = name
        self.blocking = blocking  # type: ignore[misc]
        self.returns_none = returns_none
        self.threads: dict[str, set[str]] = {"start": set(), "process": set(), "stop": set()}

    def start(self) -> None:
        self.threads["start"].add(threading.current_thread().name)

    def process(self, frame: Frame) -> Frame | None:
        self.threads["process"].add(threading.current_thread().name)
        return None if self.returns_none else frame

    def stop(self) -> None:
        self.threads["stop"].add(threading.current_thread().name)


def _names(segments: list[Segment]) -> list[list[str]]:
    return [[s.name for s in seg.stages] for seg in segments]


def _chain(spec: str) -> list[Named]:
    """``"bbnb"``: blocking and non-blocking stages named s0, s1, ..."""
    return [Named(f"s{i}", blocking=c == "b") for i, c in enumerate(spec)]


def test_blocking_stages_are_dealt_into_as_many_threads_as_asked_in_order():
    # The last stage is the sink; a non-blocking one (here "n") rides along.
    for alone in (True, False):
        plan = plan_segments(_chain("bbbbbn"), 2, sink_alone=alone)
        assert _names(plan) == [["s0", "s1", "s2"], ["s3", "s4", "s5"]]
        plan = plan_segments(_chain("bbbbbn"), 1, sink_alone=alone)
        assert _names(plan) == [["s0", "s1", "s2", "s3", "s4", "s5"]]
        plan = plan_segments(_chain("bbbbn"), 2, sink_alone=alone)
        assert _names(plan) == [["s0", "s1"], ["s2", "s3", "s4"]]


def test_a_blocking_sink_keeps_a_thread_of_its_own_when_asked():
    alone = {"sink_alone": True}
    assert _names(plan_segments(_chain("bbbbbb"), 2, **alone)) == [["s0", "s1", "s2"],
                                                                   ["s3", "s4"], ["s5"]]
    assert _names(plan_segments(_chain("bbb"), 1, **alone)) == [["s0", "s1"], ["s2"]]
    assert _names(plan_segments(_chain("b"), 1, **alone)) == [["s0"]]


def test_else_a_blocking_sink_is_dealt_like_any_stage():
    shared = {"sink_alone": False}
    assert _names(plan_segments(_chain("bbbbbb"), 2, **shared)) == [["s0", "s1", "s2"],
                                                                    ["s3", "s4", "s5"]]
    assert _names(plan_segments(_chain("bbb"), 1, **shared)) == [["s0", "s1", "s2"]]
    assert _names(plan_segments(_chain("bbb"), 2, **shared)) == [["s0", "s1"], ["s2"]]


def test_the_sink_keeps_its_own_thread_by_default_only_on_a_single_core(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1}, raising=False)
    assert _names(plan_segments(_chain("bbbbb"), 2)) == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert _names(plan_segments(_chain("bbbbb"), 2)) == [["s0", "s1", "s2"], ["s3", "s4"]]


def test_enough_threads_give_every_stage_its_own_segment():
    for alone in (True, False):
        assert _names(plan_segments(_chain("bbb"), 3, sink_alone=alone)) == [["s0"], ["s1"], ["s2"]]
        assert _names(plan_segments(_chain("bbb"), 8, sink_alone=alone)) == [["s0"], ["s1"], ["s2"]]


def test_non_blocking_stages_ride_along_with_the_blocking_stage_before_them():
    # The served avatar graph: stamp in, five compute stages, two bookkeeping
    # stages, the outgoing track (a blocking sink: it converts the picture).
    plan = plan_segments(_chain("nbbbbbnnb"), 2, sink_alone=True)
    assert _names(plan) == [["s0"], ["s1", "s2", "s3"], ["s4", "s5", "s6", "s7"], ["s8"]]
    assert [seg.blocking for seg in plan] == [False, True, True, True]
    plan = plan_segments(_chain("nbbbbbnnb"), 2, sink_alone=False)
    assert _names(plan) == [["s0"], ["s1", "s2", "s3"], ["s4", "s5", "s6", "s7", "s8"]]
    assert _names(plan_segments(_chain("bnbn"), 1)) == [["s0", "s1", "s2", "s3"]]
    assert _names(plan_segments(_chain("bnbn"), 3)) == [["s0", "s1"], ["s2", "s3"]]
    # Only stages before any blocking one stay on the event loop.
    assert _names(plan_segments(_chain("nnbn"), 4)) == [["s0", "s1"], ["s2", "s3"]]


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="stage threads must be >= 1"):
        plan_segments(_chain("bb"), 0)
    with pytest.raises(ValueError, match="event loop cannot hold a blocking stage"):
        Segment(tuple(_chain("nb")))
    assert Segment(tuple(_chain("bn"))).blocking
    with pytest.raises(ValueError, match="stage_threads must be >= 1"):
        RuntimeConfig(stage_threads=0)


def _frame() -> Frame:
    return Frame(seq=0, capture_ns=0, image=np.zeros((2, 2, 3), np.uint8))


def test_a_segment_times_and_traces_each_stage_and_stops_at_a_failure_or_a_filter():
    clock = ManualClock()
    stages = (Named("a"), FailOn({0}, name="bad"), Named("c"))
    result, steps = run_segment(clock, Segment(stages), _frame())
    assert result is None
    assert [s.stage.name for s in steps] == ["a", "bad"]
    assert steps[0].error is None and isinstance(steps[1].error, ValueError)
    assert stages[2].threads["process"] == set()  # never reached

    frame = _frame()
    result, steps = run_segment(clock, Segment((Named("a"), Named("b"))), frame)
    assert result is frame and [t.stage for t in frame.trace] == ["a", "b"]
    assert [s.error for s in steps] == [None, None]

    result, steps = run_segment(clock, Segment((Named("f", returns_none=True), Named("g"))),
                                _frame())
    assert result is None and [s.stage.name for s in steps] == ["f"]


@pytest.mark.parametrize(("cores", "spec"), [({0}, "bbbb"), ({0, 1}, "bbb")])
def test_stages_of_one_segment_share_one_thread_for_start_process_and_stop(monkeypatch, cores,
                                                                           spec):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cores, raising=False)
    stages = _chain(spec)
    sink = Collect()
    config = RuntimeConfig(mode=RunMode.OFFLINE, stage_threads=2)
    report = run_pipeline(ListSource(20), [*stages, sink], config)
    assert report.metrics.frames_out == 20
    for pair, first in ((stages[:2], "vicocam-s0"), (stages[2:], "vicocam-s2")):
        threads_of = [set().union(*s.threads.values()) for s in pair]
        assert all(len(t) == 1 for t in threads_of) and len(set().union(*threads_of)) == 1
        assert next(iter(threads_of[0])).startswith(first)
    assert len(sink.thread_names) == 1
    if len(cores) == 1:  # on one core the sink keeps a thread of its own
        assert next(iter(sink.thread_names)).startswith("vicocam-sink")
        edges = {"->s0", "->s2", "->sink", "head"}
    else:  # else it is dealt like the other stages: here with s2
        assert sink.thread_names == set(stages[2].threads["process"])
        edges = {"->s0", "->s2", "head"}
    # Every stage is still timed on its own, and only segments have edges.
    assert all(report.metrics.stages[s.name].processed == 20 for s in stages)
    assert set(report.metrics.drops) == edges


def test_failures_and_filters_are_counted_for_the_stage_inside_a_segment():
    sink = Collect()
    stages = [Named("a"), FailOn({2, 5}), Named("c")]
    config = RuntimeConfig(mode=RunMode.OFFLINE, stage_threads=1)
    report = run_pipeline(ListSource(10), [*stages, sink], config)
    m = report.metrics
    assert sink.seqs == [s for s in range(10) if s not in {2, 5}]
    assert m.stages["flaky"].errors == 2 and m.stages["a"].processed == 10
    assert m.stages["c"].processed == 8 and m.frames_failed == 2

    drop = Named("drop", returns_none=True)
    report = run_pipeline(ListSource(4), [Named("a"), drop, Collect()],
                          RuntimeConfig(mode=RunMode.OFFLINE, stage_threads=1))
    assert report.metrics.stages["drop"].filtered == 4 and report.metrics.frames_out == 0


def test_the_default_in_flight_limit_counts_segments_not_stages():
    sink = Named("sink", blocking=False)
    two = Pipeline(ListSource(1), [*_chain("bbbbb"), sink], RuntimeConfig(stage_threads=2))
    assert len(two.segments) == 2 and two.in_flight_limit == default_in_flight(2)
    one = Pipeline(ListSource(1), [*_chain("bbbbb"), sink], RuntimeConfig(stage_threads=1))
    assert len(one.segments) == 1 and one.in_flight_limit == default_in_flight(1) == 2
