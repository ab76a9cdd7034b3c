import asyncio
import dataclasses
import threading
import time

import pytest

from pipeline.clock import ManualClock
from pipeline.frame import Frame, StageTiming
from pipeline.graph import GraphError
from pipeline.in_flight import InFlightConfig
from pipeline.runtime import (
    Pipeline,
    RunMode,
    RuntimeConfig,
    SourceFailedError,
    StageFailedError,
    run_pipeline,
)
from pipeline.stage import SourceFrame, StageBase
from pipeline.summary import format_summary
from tests.pipeline.helpers import (
    Busy,
    Collect,
    FailOn,
    Gate,
    ListSource,
    MakesBox,
    NeedsBox,
)

OFFLINE = RuntimeConfig(mode=RunMode.OFFLINE)


def _vicocam_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vicocam-")]


def test_offline_run_keeps_every_frame_in_order():
    sink = Collect()
    report = run_pipeline(ListSource(300), [MakesBox(), NeedsBox(), sink], OFFLINE)
    assert report.reason == "end-of-stream"
    assert sink.seqs == list(range(300))
    assert report.metrics.frames_in == report.metrics.frames_out == 300
    assert report.metrics.frames_dropped == 0
    assert report.order_preserved


def run_gated(pipeline: Pipeline, gate: Gate, frames: int):
    """Run ``pipeline`` with ``gate`` held shut until the source has read ``frames``."""

    def release_when_all_read() -> None:
        assert gate.entered.acquire(timeout=10)
        deadline = time.monotonic() + 10
        while pipeline.metrics.frames_in < frames and time.monotonic() < deadline:
            time.sleep(0.001)
        gate.open.set()

    helper = threading.Thread(target=release_when_all_read)
    helper.start()
    try:
        return asyncio.run(pipeline.run())
    finally:
        helper.join()


def test_live_run_drops_the_oldest_and_processes_the_newest():
    gate, sink, source = Gate(), Collect(), ListSource(10)
    pipeline = Pipeline(source, [gate, sink], RuntimeConfig(mode=RunMode.LIVE))
    report = run_gated(pipeline, gate, 10)
    m = report.metrics
    # Frame 0 was in the gate; 1..8 were each replaced by a newer one; 9 ran last.
    assert sink.seqs == [0, 9]
    assert m.frames_in == m.frames_out + m.frames_dropped == 10
    assert m.drops["->gate"] + m.drops["head"] == 8


def test_head_drops_are_the_limiters_and_every_report_shows_the_same_counts():
    gate, sink, source = Gate(), Collect(), ListSource(10)
    pipeline = Pipeline(source, [gate, sink], RuntimeConfig(mode=RunMode.LIVE, max_in_flight=1))
    report = run_gated(pipeline, gate, 10)
    m = report.metrics
    # Frame 0 held the only token in the gate; 1..9 found none and nothing to replace.
    assert sink.seqs == [0]
    assert m.drops == {"->gate": 0, "->sink": 0, "head": 9}
    assert m.to_dict()["drops"] == m.drops and m.to_dict()["frames_dropped"] == 9
    assert "dropped     9 (head 9)" in format_summary(report)
    assert "dropped 9" in m.status_line()


def test_a_stage_failing_on_some_frames_does_not_stop_the_stream():
    sink = Collect()
    report = run_pipeline(ListSource(20), [FailOn({2, 5, 6}), sink], OFFLINE)
    assert report.reason == "end-of-stream"
    assert sink.seqs == [s for s in range(20) if s not in {2, 5, 6}]
    assert report.metrics.stages["flaky"].errors == 3
    assert report.metrics.frames_failed == 3


def test_a_stage_that_keeps_failing_stops_the_run_and_cleans_up():
    source, sink = ListSource(1000), Collect()
    config = RuntimeConfig(mode=RunMode.OFFLINE, max_consecutive_errors=4)
    with pytest.raises(StageFailedError, match=r"'flaky' failed on 4 consecutive frames"):
        run_pipeline(source, [FailOn(None), sink], config)
    assert source.closed and sink.stopped
    assert _vicocam_threads() == []


def test_shutdown_leaves_no_threads_and_runs_each_stage_on_one_thread():
    before = set(threading.enumerate())
    sink = Collect()
    run_pipeline(ListSource(50), [MakesBox(), sink], OFFLINE)
    assert set(threading.enumerate()) <= before
    assert _vicocam_threads() == []
    assert sink.started and sink.stopped
    assert len(sink.thread_names) == 1
    assert next(iter(sink.thread_names)).startswith("vicocam-sink")


def test_validation_rejects_a_miswired_graph_before_opening_anything():
    source = ListSource(5)
    with pytest.raises(GraphError) as err:
        Pipeline(source, [NeedsBox(), MakesBox(), Collect()])
    assert "'encode' needs FaceBoxStub" in str(err.value)
    assert source.sent == 0 and not source.closed


def test_validation_rejects_duplicate_names_and_empty_graphs():
    with pytest.raises(GraphError, match="named 'sink'"):
        Pipeline(ListSource(1), [Collect(), Collect()])
    with pytest.raises(GraphError, match="no stages"):
        Pipeline(ListSource(1), [])


def test_request_stop_ends_an_endless_live_run():
    source, sink = ListSource(10**9, fps=200), Collect()
    pipeline = Pipeline(source, [sink])
    timer = threading.Timer(0.3, pipeline.request_stop)
    timer.start()
    report = asyncio.run(pipeline.run())
    timer.join()
    assert report.reason == "stopped"
    assert source.closed and sink.stopped
    m = report.metrics
    assert m.frames_in == m.frames_out + m.frames_dropped


def test_cancellation_like_ctrl_c_cleans_up():
    source, sink = ListSource(10**9, fps=200), Collect()
    pipeline = Pipeline(source, [sink])

    async def main():
        task = asyncio.create_task(pipeline.run())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert source.closed and sink.stopped
    assert _vicocam_threads() == []


def test_live_sources_are_paced_to_their_rate():
    clock = ManualClock()
    sink = Collect()
    captures: list[int] = []

    class Record(Collect):
        # On the event loop, so it takes each frame before the next is read:
        # the manual clock does not wait, so a threaded stage could see drops.
        blocking = False

        def process(self, frame):
            captures.append(frame.capture_ns)
            return super().process(frame)

    config = RuntimeConfig(mode=RunMode.LIVE, max_in_flight=100)
    pipeline = Pipeline(ListSource(5, fps=25), [Record("rec"), sink], config, clock=clock)
    asyncio.run(pipeline.run())
    assert captures == [i * 40_000_000 for i in range(5)]


def test_frame_and_time_limits():
    report = run_pipeline(
        ListSource(100), [Collect()], RuntimeConfig(mode=RunMode.OFFLINE, max_frames=7)
    )
    assert report.reason == "max-frames"
    assert report.metrics.frames_out == 7


def test_source_errors_are_reported_clearly():
    class Broken(ListSource):
        def open(self):
            raise FileNotFoundError("no such file: clip.mp4")

    with pytest.raises(SourceFailedError, match="cannot open source 'list': no such file"):
        run_pipeline(Broken(3), [Collect()])


def test_wrong_frame_shape_from_a_source_is_a_clear_error():
    class Bad(ListSource):
        def read(self):
            got = super().read()
            return None if got is None else type(got)(got.image[:, :, 0])

    # One bad picture is dropped (see below); a source that keeps sending them stops the run.
    with pytest.raises(SourceFailedError, match=r"must have shape \(H, W, 3\)"):
        run_pipeline(Bad(30), [Collect()], RuntimeConfig(max_consecutive_errors=5))


def test_a_bad_picture_from_a_source_is_dropped_and_the_run_goes_on():
    class SomeBad(ListSource):
        def read(self):
            got = super().read()
            if got is None or self.sent not in (2, 3):
                return got
            return type(got)(got.image[:, :, :2] if self.sent == 2 else got.image.astype(float))

    sink = Collect()
    report = run_pipeline(SomeBad(6), [sink], RuntimeConfig(mode=RunMode.OFFLINE))
    assert report.reason == "end-of-stream" and sink.seqs == [0, 3, 4, 5]
    assert report.metrics.frames_rejected == 2 and report.metrics.frames_in == 6


def _busy_run(adaptive: bool, mode: RunMode = RunMode.LIVE):
    """A 100 fps camera into 30 ms of work that cannot overlap, on a manual clock."""
    clock = ManualClock()
    config = RuntimeConfig(mode=mode, max_in_flight=3, adaptive_in_flight=adaptive,
                           in_flight_control=InFlightConfig(window=4), max_frames=600)
    pipeline = Pipeline(ListSource(10**6, fps=100), [Busy(clock, 30), Busy(clock, 0, "sink")],
                        config, clock=clock)
    return asyncio.run(pipeline.run())


def test_the_live_limit_follows_the_controller_down_to_what_pays():
    adaptive, fixed = _busy_run(adaptive=True), _busy_run(adaptive=False)
    limits = adaptive.metrics.in_flight.limits
    # It starts where the fixed limiter is; the work cannot overlap, so the
    # first verdict (a window of 4) cuts to one frame, which holds the rate.
    assert limits[:4] == [3] * 4 and set(limits[4:]) == {1}
    assert adaptive.metrics.in_flight_summary()["in_flight_limit_last"] == 1
    assert adaptive.metrics.fps_out() == fixed.metrics.fps_out()
    assert "in flight   mean 1.00, limit p50 1, last 1" in format_summary(adaptive)


def test_the_fixed_limit_stays_fixed_when_adaptation_is_off():
    report = _busy_run(adaptive=False)
    gauge = report.metrics.in_flight
    assert set(gauge.limits) == {3}
    assert report.metrics.in_flight_summary()["in_flight_limit_last"] == 3


def test_offline_runs_keep_the_fixed_limit_even_with_adaptation_on():
    sink = Collect()
    config = RuntimeConfig(mode=RunMode.OFFLINE, max_in_flight=2, adaptive_in_flight=True,
                           in_flight_control=InFlightConfig(window=4))
    pipeline = Pipeline(ListSource(200), [MakesBox(), sink], config)
    report = asyncio.run(pipeline.run())
    assert config.adaptive_in_flight and not config.adaptive
    assert pipeline.in_flight_controller is None
    assert sink.seqs == list(range(200))
    assert set(report.metrics.in_flight.limits) == {2}


def test_head_refusals_reach_the_controller():
    gate, sink, source = Gate(), Collect(), ListSource(10)
    config = RuntimeConfig(mode=RunMode.LIVE, max_in_flight=1, adaptive_in_flight=True)
    pipeline = Pipeline(source, [gate, sink], config)
    report = run_gated(pipeline, gate, 10)
    # As with the fixed limit, frame 0 held the only token and 1..9 were refused;
    # the controller was told the limit binds (its window is not over yet).
    assert sink.seqs == [0] and report.metrics.drops["head"] == 9
    controller = pipeline.in_flight_controller
    assert controller is not None and controller.binding and controller.limit == 1


class TimedSource(ListSource):
    """Captures each picture, then works on it for 1 ms (and says so); frame 1's
    reported work starts before its capture, which cannot be and is ignored."""

    name = "timed"

    def read(self) -> SourceFrame | None:
        got = super().read()
        if got is None:
            return None
        capture = time.monotonic_ns()
        start = capture - 1_000_000 if self.sent == 2 else capture
        time.sleep(0.001)
        return dataclasses.replace(got, capture_ns=capture, work_ns=(start, time.monotonic_ns()))


class KeepsSourceWork(StageBase):
    name = "keeps"

    def __init__(self) -> None:
        self.work: list[StageTiming | None] = []

    def process(self, frame: Frame) -> Frame:
        self.work.append(frame.source_work)
        return frame


def test_the_sources_timed_work_reaches_the_frame_and_its_legs():
    keeps = KeepsSourceWork()
    report = run_pipeline(TimedSource(3), [keeps, Collect()], OFFLINE)
    first, impossible, third = keeps.work
    assert impossible is None
    for work in (first, third):
        assert work is not None and work.stage == "timed" and work.end_ns - work.start_ns >= 1e6
    legs = report.metrics.legs.means()
    assert "timed" in legs and "wait timed" in legs and legs["timed"] >= 1.0


class _WakesTheLoop(StageBase):
    """Ends each frame by giving the event loop a job that waits for stage "b"."""

    name = "a"

    def __init__(self, b_started: threading.Event, timeout_s: float) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.b_started, self.timeout_s = b_started, timeout_s
        self.answers: list[bool] = []

    def process(self, frame: Frame) -> Frame:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(
            lambda: self.answers.append(self.b_started.wait(self.timeout_s)))
        return frame


class _Starts(StageBase):
    name = "b"

    def __init__(self, started: threading.Event) -> None:
        self.started = started

    def process(self, frame: Frame) -> Frame:
        self.started.set()
        return frame


@pytest.mark.parametrize(("mode", "without_the_loop"), [(RunMode.LIVE, True),
                                                        (RunMode.OFFLINE, False)])
def test_live_frames_go_from_worker_to_worker_without_the_event_loop(mode, without_the_loop):
    # Stage "a" keeps the loop busy until stage "b", in the next worker, has
    # started on the frame. Live, the frame gets there without the loop; offline
    # the loop's bounded edges move it (backpressure), so the wait times out.
    started = threading.Event()
    first, sink = _WakesTheLoop(started, 10 if without_the_loop else 0.5), Collect()

    async def run():
        first.loop = asyncio.get_running_loop()
        pipeline = Pipeline(ListSource(3), [first, _Starts(started), sink],
                            RuntimeConfig(mode=mode, stage_threads=3, max_in_flight=1))
        return await pipeline.run()

    report = asyncio.run(run())
    assert first.answers[0] is without_the_loop
    assert sink.seqs and report.metrics.frames_failed == 0


class _CountsReads(ListSource):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.third_read = threading.Event()

    def read(self) -> SourceFrame | None:
        if self.sent == 2:
            self.third_read.set()  # frame 1 was admitted before the loop asked for more
        return super().read()


class _HoldsTheLoopAfterFirstFrame(StageBase):
    """On frame 0, once frame 1 waits at the head, gives the event loop a job
    that waits until this stage has started on a later frame."""

    name = "a"

    def __init__(self, source: _CountsReads, timeout_s: float) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.source, self.timeout_s = source, timeout_s
        self.later = threading.Event()
        self.answers: list[bool] = []

    def process(self, frame: Frame) -> Frame:
        if frame.seq > 0:
            self.later.set()
            return frame
        assert self.loop is not None and self.source.third_read.wait(10)
        self.loop.call_soon_threadsafe(
            lambda: self.answers.append(self.later.wait(self.timeout_s)))
        return frame


@pytest.mark.parametrize(("mode", "without_the_loop"), [(RunMode.LIVE, True),
                                                        (RunMode.OFFLINE, False)])
def test_the_first_worker_takes_the_next_admitted_frame_without_the_event_loop(
        mode, without_the_loop):
    # Live, the loop admits frames straight into the first worker's relay and
    # does not wait for that worker: with the loop held busy, the worker still
    # goes on to the frame admitted while it ran. Offline the loop hands each
    # frame to the worker, so the wait times out.
    source = _CountsReads(50)
    first, sink = _HoldsTheLoopAfterFirstFrame(source, 10 if without_the_loop else 0.5), Collect()

    async def run():
        first.loop = asyncio.get_running_loop()
        config = RuntimeConfig(mode=mode, stage_threads=1, max_in_flight=2,
                               adaptive_in_flight=False)
        return await Pipeline(source, [first, sink], config).run()

    report = asyncio.run(run())
    assert first.answers == [without_the_loop]
    assert sink.seqs and sink.seqs == sorted(sink.seqs) and report.metrics.frames_failed == 0
    assert report.metrics.in_flight.in_flight == 0  # every token came back


def test_a_live_stage_behind_a_relay_that_keeps_failing_stops_the_run_and_cleans_up():
    source, first, sink = ListSource(1000), Collect("first"), Collect()
    config = RuntimeConfig(mode=RunMode.LIVE, max_consecutive_errors=4, stage_threads=3)
    with pytest.raises(StageFailedError, match=r"'flaky' failed on 4 consecutive frames"):
        run_pipeline(source, [first, FailOn(None), sink], config)
    assert source.closed and first.stopped and sink.stopped
    assert _vicocam_threads() == []
    # Each stage kept its own thread for start, process and stop.
    assert len(first.thread_names) == 1 and len(sink.thread_names) == 1


class _Sleeps(StageBase):
    def __init__(self, name: str, seconds: float) -> None:
        self.name, self.seconds = name, seconds
        self.calls = 0

    def process(self, frame: Frame) -> Frame:
        self.calls += 1
        time.sleep(self.seconds)
        return frame


def test_live_drops_and_tokens_add_up_across_relays():
    # Three worker segments, each slower than the camera: frames are replaced
    # in the relays, every drop gives its token back, and the run drains.
    stages = [_Sleeps("a", 0.004), _Sleeps("b", 0.006), Collect()]
    config = RuntimeConfig(mode=RunMode.LIVE, stage_threads=3, max_in_flight=3)
    report = run_pipeline(ListSource(60, fps=1000), stages, config)
    m = report.metrics
    assert m.frames_in == 60 and m.frames_out == len(stages[-1].seqs)
    assert m.frames_out + m.frames_dropped == 60
    assert stages[-1].seqs == sorted(stages[-1].seqs)  # order kept
    assert m.in_flight.in_flight == 0  # every token came back
    # The loop heard of every stage's work, also on frames a later relay dropped
    # (each frame carries it until it leaves the relays).
    assert m.frames_dropped > 0
    for stage in stages[:2]:
        assert m.stages[stage.name].processed == stage.calls > 0
    assert m.stages["sink"].processed == m.frames_out


class _TickingClock(ManualClock):
    """Moves one millisecond each time it is read (from any thread): the loop
    always counts a frame later than the sink returned it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            self.advance(1_000_000)
            return super().now_ns()


class _KeepsFrames(Collect):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    def process(self, frame: Frame) -> Frame:
        self.frames.append(frame)
        return super().process(frame)


@pytest.mark.parametrize("mode", [RunMode.LIVE, RunMode.OFFLINE])
def test_latency_ends_when_the_sink_returns_the_frame_not_when_the_loop_counts_it(mode):
    sink = _KeepsFrames()
    stages = [Collect("a"), sink]
    report = run_pipeline(ListSource(6, fps=30), stages,
                          RuntimeConfig(mode=mode, stage_threads=2, sink_alone=True),
                          clock=_TickingClock())
    m = report.metrics
    assert m.frames_out == len(sink.frames) > 0
    for (delivered, ms), lag, frame in zip(m.latencies, m.count_lags_ms, sink.frames,
                                           strict=True):
        assert frame.trace[-1].stage == "sink"
        assert delivered == frame.trace[-1].end_ns
        assert ms == (frame.trace[-1].end_ns - frame.capture_ns) / 1e6
        assert lag >= 1.0  # the loop read the clock at least once after the sink
    assert m.legs.means()["out"] == 0.0


def test_a_success_heard_late_does_not_end_a_later_streak_of_failures():
    from pipeline.runtime import _Streaks

    streaks = _Streaks([Collect("a")])
    assert streaks.failed("a", 5) == 1
    streaks.succeeded("a", 4)  # frame 4 went on through relays; heard after 5 failed
    assert streaks.failed("a", 6) == 2
    streaks.succeeded("a", 7)
    assert streaks.failed("a", 8) == 1
