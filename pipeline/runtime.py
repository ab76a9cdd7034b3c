"""The asyncio runtime that moves frames from a source through a chain of stages.

Shape of a run::

    source --(head: flow limiter)--> [edge] -> stage 1 -> [edge] -> ... -> sink

* The event loop admits frames, counts them and supervises. The blocking
  stages run in worker threads, one per core of the machine
  (``stage_threads``): consecutive blocking stages are dealt into that many
  segments (`pipeline.segments`), each run back to back by one worker, so
  segments overlap, a frame changes threads only between segments, and
  ``start``/``process``/``stop`` of a stage always run on the same thread
  (thread-affine resources such as sessions stay valid). The source reads in
  a worker of its own.
* Edges, one in front of each segment, are `LiveEdge` (capacity 1, drop
  oldest) in live mode and `LosslessEdge` (bounded, blocking) in offline
  mode. In live mode a worker segment at the head or fed by another worker
  segment takes its frames through a `Relay` (the same policy): the loop
  admits a frame straight into the first worker's relay, and each worker
  hands its result straight to the next, without the loop between them. The
  loop hears of a frame once, when it leaves the relays (delivered, dropped,
  filtered or failed), and counts what every segment did with it then.
  The flow limiter at the head bounds the frames in flight; in live
  mode a new frame replaces the one waiting at the head, so the graph always
  works on the newest picture.
  Optionally (``adaptive_in_flight``) an `InFlightController` moves the limit
  to the smallest value that holds the throughput.
* A failure on one frame is logged with the stage name, the frame is dropped
  and counted, and the stream goes on; ``max_consecutive_errors`` failures in
  a row stop the run with `StageFailedError`. A source's picture that is not
  ``(H, W, 3)`` uint8 is dropped and counted the same way at the head
  (``Metrics.frames_rejected``), and as many in a row stop the run with
  `SourceFailedError`.
* Control is out of band: `Pipeline.request_stop` (thread-safe), the end of
  the stream (the source returns ``None``), Ctrl-C (task cancellation) and
  errors all end in the same cleanup, which stops every stage, closes the
  source and joins every worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pipeline.clock import Clock, MonotonicClock
from pipeline.edges import Edge, EdgePolicy, LiveEdge, make_edge
from pipeline.frame import DEFAULT_TIME_BASE, Frame, StageTiming, check_image
from pipeline.graph import validate_chain
from pipeline.in_flight import InFlightConfig, InFlightController
from pipeline.limiter import FlowLimiter
from pipeline.metrics import Metrics
from pipeline.relay import Relay
from pipeline.segments import Segment, Step, plan_segments, run_segment
from pipeline.stage import Source, SourceFrame, SourceInfo, Stage

log = logging.getLogger(__name__)


class RunMode(enum.Enum):
    LIVE = "live"
    """Real time: sources paced to their rate, leaky edges, drops counted."""
    OFFLINE = "offline"
    """File to file: sources read as fast as the graph accepts; nothing dropped."""


class StageFailedError(RuntimeError):
    """A stage failed on too many consecutive frames; the run was stopped."""


class SourceFailedError(RuntimeError):
    """The source could not be opened or failed while reading."""


def default_in_flight(blocking_segments: int, cpus: int | None = None) -> int:
    """One frame per core of the machine plus one waiting, at most one per blocking
    segment plus one, at least two.

    No more stages can compute at once than there are cores: further frames in
    flight only wait in the edges and, after a hiccup (another process taking
    the cores), are each delivered late. Measured with a browser beside the
    server on 2 cores (`vicocam bench webrtc-model --no-pin`, 3 runs each): 3
    in flight against the 6 a session held before, same 21.7 fps, p50 167 ms
    against 275, server in->out 117 ms against 248, no growth over the minute.
    The machine's cores, not this process's affinity: a server pinned to one
    core held 2 and lost a quarter of its frame rate (20.0 against 26.9 fps).
    """
    cores = cpus if cpus is not None else os.cpu_count() or 1
    return max(2, min(blocking_segments + 1, cores + 1))


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """How the runtime moves frames.

    Attributes:
        mode: live (drop to stay real time) or offline (lose nothing).
        max_in_flight: frames admitted at the head and not yet delivered or
            dropped. ``None`` = `default_in_flight`: as many frames as the
            stages can work on at once (pipelining), no more than the
            machine's cores can run, plus one waiting. The fixed
            limit when ``adaptive_in_flight`` is off or the run is offline;
            otherwise the cap of the adaptive limit.
        adaptive_in_flight: live mode only (the default): let an
            `InFlightController` move the limit within 1..max_in_flight, to
            the smallest value that holds the frame rate (frames in flight
            that buy no frame rate only add latency; see `pipeline.in_flight`).
            It starts at the cap. Measured on a 2-core machine it kept the
            fixed limit's frame rate within 5 % beside 0-6 CPU burners, at the
            same latency or lower (`vicocam bench contention`), and matched it
            through a browser (`vicocam bench webrtc-model`). ``False`` keeps
            ``max_in_flight`` fixed for the whole run. Offline runs always use
            the fixed limit (backpressure, nothing dropped, so there is no
            latency to win).
        in_flight_control: tuning of the adaptive limit.
        stage_threads: worker threads the blocking stages are dealt into
            (`pipeline.segments.plan_segments`); ``None`` = one per core of the
            machine. A number at or above the blocking stages gives each its own.
        sink_alone: a blocking sink gets a worker thread of its own, not
            counted in ``stage_threads`` (a sink that encodes video is as
            heavy as a model stage); ``None``: only when this process may
            run on one core (`pipeline.segments.plan_segments`).
        lossless_capacity: queue size of each offline edge.
        max_consecutive_errors: failures in a row after which a stage stops
            the run (also: refused source pictures in a row).
        max_frames: stop after reading this many frames (``None`` = no limit).
        duration_s: stop after this many seconds (``None`` = no limit).
        status_interval_s: period of the live one-line status; 0 disables it.
        drain_timeout_s: at the end, how long to wait for frames in flight.
    """

    mode: RunMode = RunMode.LIVE
    max_in_flight: int | None = None
    adaptive_in_flight: bool = True
    in_flight_control: InFlightConfig = field(default_factory=InFlightConfig)
    stage_threads: int | None = None
    sink_alone: bool | None = None
    lossless_capacity: int = 4
    max_consecutive_errors: int = 10
    max_frames: int | None = None
    duration_s: float | None = None
    status_interval_s: float = 0.0
    drain_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.max_consecutive_errors < 1:
            raise ValueError("max_consecutive_errors must be >= 1")
        if self.stage_threads is not None and self.stage_threads < 1:
            raise ValueError("stage_threads must be >= 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration_s must be > 0")

    @property
    def edge_policy(self) -> EdgePolicy:
        return EdgePolicy.LIVE if self.mode is RunMode.LIVE else EdgePolicy.LOSSLESS

    @property
    def adaptive(self) -> bool:
        """Whether this run's in-flight limit adapts (live and switched on)."""
        return self.mode is RunMode.LIVE and self.adaptive_in_flight


@dataclass
class RunReport:
    """What a finished run returns.

    ``reason`` is one of ``"end-of-stream"``, ``"stopped"`` (request_stop or
    Ctrl-C), ``"max-frames"`` or ``"duration"``.
    """

    reason: str
    source_info: SourceInfo
    metrics: Metrics
    order_preserved: bool = True


@dataclass(eq=False)
class _Worker:
    """A single-thread executor owned by one component."""

    name: str
    executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"vicocam-{self.name}")

    async def call(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


class _Streaks:
    """Each stage's failures in a row, in frame order.

    The loop hears of relayed segments' frames late and not always in order
    (`_Unheard`): a success only ends a streak that began before its frame.
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        self._count = dict.fromkeys((s.name for s in stages), 0)
        self._since = dict.fromkeys((s.name for s in stages), -1)

    def failed(self, name: str, seq: int) -> int:
        """Count a failure on frame ``seq``; the failures in a row so far."""
        self._count[name] += 1
        self._since[name] = max(self._since[name], seq)
        return self._count[name]

    def succeeded(self, name: str, seq: int) -> None:
        if seq > self._since[name]:
            self._count[name] = 0


@dataclass(eq=False, slots=True)
class _Unheard:
    """What relayed segments did with a frame that the loop has not heard of yet.

    A worker that hands a frame on to the next relay keeps its segment's steps
    here, on the frame, instead of waking the loop while the next worker
    wakes; the loop counts them with the frame's last notice (delivered,
    dropped, filtered or failed), one wake-up a frame.
    """

    runs: list[tuple[_RelayIn, Frame, list[Step]]] = field(default_factory=list)

    @staticmethod
    def of(frame: Frame) -> _Unheard:
        unheard = frame.find(_Unheard)
        if unheard is None:
            unheard = _Unheard()
            frame.put(unheard)
        return unheard

    @staticmethod
    def take(frame: Frame) -> list[tuple[_RelayIn, Frame, list[Step]]]:
        unheard = frame.find(_Unheard)
        if unheard is None:
            return []
        runs, unheard.runs = unheard.runs, []
        return runs


class _RelayIn:
    """A `Relay` into a worker segment, with what the loop keeps for it: the
    stages' failures in a row, and a future that a stage failing too often sets
    (the segment's task waits on it, as other segments' tasks run their loop)."""

    relay: Relay

    def __init__(self, segment: Segment, loop: asyncio.AbstractEventLoop) -> None:
        self.name = f"->{segment.name}"
        self.failures = _Streaks(segment.stages)
        self._failed: asyncio.Future[None] = loop.create_future()

    @property
    def drops(self) -> int:
        return self.relay.drops

    def fail(self, exc: StageFailedError) -> None:
        if not self._failed.done():
            self._failed.set_exception(exc)

    async def watch(self) -> None:
        """Return never; raise the `StageFailedError` of a stage that failed too often."""
        await self._failed


def _run_and_hand_on(clock: Clock, segment: Segment, frame: Frame,
                     relay: Relay | None) -> tuple[Frame | None, list[Step]]:
    """`run_segment` in the segment's worker, then the result straight into ``relay``."""
    result, steps = run_segment(clock, segment, frame)
    if result is not None and relay is not None:
        relay.put_nowait(result)
    return result, steps


def _segment_workers(segments: Sequence[Segment]) -> dict[str, _Worker]:
    """Each blocking segment's worker, under the name of every stage it runs."""
    workers: dict[str, _Worker] = {}
    for segment in segments:
        if segment.blocking:
            worker = _Worker(segment.name)
            workers.update(dict.fromkeys((s.name for s in segment.stages), worker))
    return workers


class Pipeline:
    """One source, a chain of stages (the last one is the sink), one run.

    Build it, then ``await pipeline.run()`` (or `run_pipeline` from sync code).
    The graph is validated in the constructor, before any resource is opened.
    """

    def __init__(
        self,
        source: Source,
        stages: Sequence[Stage],
        config: RuntimeConfig | None = None,
        *,
        clock: Clock | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        validate_chain(source, stages)
        self.source = source
        self.stages = list(stages)
        self.config = config or RuntimeConfig()
        self.segments = plan_segments(self.stages, self.config.stage_threads,
                                      sink_alone=self.config.sink_alone)
        self.clock: Clock = clock or MonotonicClock()
        self.metrics = Metrics()
        self._on_status = on_status
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._last_seq = -1
        self._rejected_in_a_row = 0
        self._order_preserved = True
        self._controller: InFlightController | None = None
        self._relays: list[Relay] = []

    # ---- control (out of band) -------------------------------------------
    def request_stop(self) -> None:
        """Ask the run to stop; safe from any thread, idempotent."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    @property
    def in_flight_controller(self) -> InFlightController | None:
        """The adaptive limit's controller once a run started; ``None`` if fixed."""
        return self._controller

    @property
    def in_flight_limit(self) -> int:
        """The fixed limit, or the cap of the adaptive one (``RuntimeConfig``)."""
        if self.config.max_in_flight is not None:
            return self.config.max_in_flight
        return default_in_flight(sum(1 for s in self.segments if s.blocking))

    # ---- the run ------------------------------------------------------------
    async def run(self) -> RunReport:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested.is_set():
            self._stop.set()
        source_worker = _Worker("source")
        workers = _segment_workers(self.segments)
        started: list[Stage] = []
        source_open = False
        tasks: list[asyncio.Task[object]] = []
        try:
            info = await self._open_source(source_worker)
            source_open = True
            await self._start_stages(workers, started)
            reason = await self._run_graph(info, source_worker, workers, tasks)
            return RunReport(reason, info, self.metrics, self._order_preserved)
        finally:
            await _cancel_all(tasks)
            for relay in self._relays:
                relay.close()  # nothing more runs: each stage's stop() comes last
            await self._stop_stages(started, workers)
            if source_open:
                await self._close_source(source_worker)
            for worker in [source_worker, *dict.fromkeys(workers.values())]:
                worker.executor.shutdown(wait=True)

    async def _open_source(self, worker: _Worker) -> SourceInfo:
        try:
            info = await worker.call(self.source.open)
        except Exception as exc:
            raise SourceFailedError(f"cannot open source {self.source.name!r}: {exc}") from exc
        if not isinstance(info, SourceInfo):
            raise SourceFailedError(f"source {self.source.name!r} open() returned {info!r}")
        return info

    async def _start_stages(self, workers: dict[str, _Worker], started: list[Stage]) -> None:
        for stage in self.stages:
            try:
                await self._call(stage, workers, stage.start)
            except Exception as exc:
                raise StageFailedError(f"stage {stage.name!r} failed to start: {exc}") from exc
            started.append(stage)

    async def _stop_stages(self, started: list[Stage], workers: dict[str, _Worker]) -> None:
        for stage in reversed(started):
            try:
                await asyncio.wait_for(
                    self._call(stage, workers, stage.stop), self.config.drain_timeout_s
                )
            except Exception:
                log.exception("stage %r failed to stop cleanly", stage.name)

    async def _close_source(self, worker: _Worker) -> None:
        # close() runs on its own short-lived thread: the source worker may be
        # blocked in read() (a camera), and close() is what unblocks it.
        closer = threading.Thread(target=self._close_source_quietly, name="vicocam-source-close")
        closer.start()
        await asyncio.get_running_loop().run_in_executor(None, closer.join)

    def _close_source_quietly(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("source %r failed to close cleanly", self.source.name)

    @staticmethod
    async def _call(stage: Stage, workers: dict[str, _Worker], fn: Callable[[], object]) -> None:
        worker = workers.get(stage.name)
        if worker is None:
            fn()
        else:
            await worker.call(fn)

    async def _run_graph(
        self,
        info: SourceInfo,
        source_worker: _Worker,
        workers: dict[str, _Worker],
        tasks: list[asyncio.Task[object]],
    ) -> str:
        limiter = self._build_head()
        edges = self._build_edges(limiter, workers)
        for i, segment in enumerate(self.segments):
            inp, out = edges[i], edges[i + 1] if i + 1 < len(edges) else None
            if isinstance(inp, _RelayIn):  # its frames come from the worker before
                coro: Coroutine[object, object, None] = inp.watch()
            else:
                coro = self._segment_loop(segment, workers.get(segment.name), inp, out, limiter)
            tasks.append(asyncio.create_task(coro, name=f"stage:{segment.name}"))
        first = edges[0]
        feeder = asyncio.create_task(self._feed(info, source_worker, first, limiter),
                                     name="source")
        tasks.append(feeder)
        if self.config.status_interval_s > 0 and self._on_status is not None:
            tasks.append(asyncio.create_task(self._status_loop(), name="status"))
        reason = await self._supervise(feeder, tasks[: len(self.segments)])
        await self._drain(limiter, tasks[: len(self.segments)])
        return reason

    def _build_head(self) -> FlowLimiter:
        """The flow limiter, fed to the metrics' gauge; its controller if adaptive."""
        cap = self.in_flight_limit
        if self.config.adaptive:
            self._controller = InFlightController(cap, self.config.in_flight_control)
            cap = self._controller.limit
        return FlowLimiter(cap, on_change=self._gauge)

    def _gauge(self, in_flight: int, limit: int) -> None:
        self.metrics.in_flight.record(self.clock.now_ns(), in_flight, limit)

    def _build_edges(self, limiter: FlowLimiter,
                     workers: dict[str, _Worker]) -> list[Edge | _RelayIn]:
        """One edge in front of each segment, a `Relay` between two worker segments
        of a live run; every owner of drops is registered with metrics."""
        edges: list[Edge | _RelayIn] = []
        for i in reversed(range(len(self.segments))):
            segment = self.segments[i]
            out = edges[0] if edges else None
            edge = (self._relay_in(segment, workers[segment.name], out, limiter)
                    if self._relayed(i) else self._edge(segment, limiter))
            self.metrics.count_drops_of(edge.name, edge)
            edges.insert(0, edge)
        self.metrics.count_drops_of("head", limiter)
        return edges

    def _relayed(self, index: int) -> bool:
        """Whether segment ``index`` takes its frames through a `Relay`: a live
        worker segment at the head (from the loop's admission) or after another."""
        segments, live = self.segments, self.config.mode is RunMode.LIVE
        return live and segments[index].blocking and (index == 0 or segments[index - 1].blocking)

    def _edge(self, segment: Segment, limiter: FlowLimiter) -> Edge:
        # A dropped frame leaves the graph: its token goes back to the head.
        return make_edge(self.config.edge_policy, f"->{segment.name}",
                         capacity=self.config.lossless_capacity,
                         on_drop=lambda _frame: limiter.release())

    def _relay_in(self, segment: Segment, worker: _Worker, out: Edge | _RelayIn | None,
                  limiter: FlowLimiter) -> _RelayIn:
        """The relay into ``segment``: its worker runs each frame and hands the
        result on (to the next relay) itself; the loop hears of the frame once
        it leaves the relays (`_Unheard`)."""
        # Non-blocking stages ride in the segment before them, so what follows a
        # worker segment is another one (a relay) or nothing (it ends the chain).
        assert out is None or isinstance(out, _RelayIn)
        loop = asyncio.get_running_loop()
        relayed = _RelayIn(segment, loop)

        def run(frame: Frame) -> None:
            result, steps = run_segment(self.clock, segment, frame)
            if result is not None and isinstance(out, _RelayIn):
                if result is not frame:
                    _Unheard.of(result).runs += _Unheard.take(frame)
                _Unheard.of(result).runs.append((relayed, frame, steps))
                out.relay.put_nowait(result)
            else:
                loop.call_soon_threadsafe(self._relay_done, relayed, frame, result, steps,
                                          out is None, limiter)

        def release(frame: Frame) -> None:
            loop.call_soon_threadsafe(self._relay_dropped, frame, limiter)

        relayed.relay = Relay(f"->{segment.name}", worker.executor, run, on_drop=release)
        self._relays.append(relayed.relay)
        return relayed

    def _relay_done(self, relayed: _RelayIn, frame: Frame, result: Frame | None,
                    steps: list[Step], last: bool, limiter: FlowLimiter) -> None:
        """On the loop, after a relayed segment ran ``frame`` and it went no further
        through relays: count it and what the segments before did with it, and
        deliver or release it."""
        if not self._hear(frame):
            return
        try:
            self._account(steps, frame, relayed.failures)
        except StageFailedError as exc:
            relayed.fail(exc)
            return
        if result is None:
            if steps[-1].error is None:
                self.metrics.stages[steps[-1].stage.name].filtered += 1
            limiter.release()
        elif last:
            self._deliver(result, limiter)
            limiter.release()

    def _relay_dropped(self, frame: Frame, limiter: FlowLimiter) -> None:
        """On the loop, after a relay dropped ``frame``: count what the segments
        before did with it, and give its token back."""
        if self._hear(frame):
            limiter.release()

    def _hear(self, frame: Frame) -> bool:
        """Count the runs of relayed segments that ``frame`` carries (`_Unheard`);
        ``False`` once a stage failed too often (its segment's run then stops)."""
        for relayed, seen, steps in _Unheard.take(frame):
            try:
                self._account(steps, seen, relayed.failures)
            except StageFailedError as exc:
                relayed.fail(exc)
                return False
        return True

    async def _supervise(
        self, feeder: asyncio.Task[object], stage_tasks: list[asyncio.Task[object]]
    ) -> str:
        """Wait until the source ends, a stop is requested, or a stage fails."""
        assert self._stop is not None
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait(
                {feeder, stopper, *stage_tasks}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
        for task in stage_tasks:
            if task in done:
                task.result()  # raises StageFailedError
        if feeder in done:
            return str(feeder.result())  # raises SourceFailedError
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        return "stopped"

    async def _drain(self, limiter: FlowLimiter, stage_tasks: list[asyncio.Task[object]]) -> None:
        """Let the frames already admitted reach the sink (nothing lost at the end)."""
        idle = asyncio.create_task(limiter.wait_idle(), name="drain")
        try:
            done, _ = await asyncio.wait(
                {idle, *stage_tasks},
                timeout=self.config.drain_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            idle.cancel()
        for task in stage_tasks:
            if task in done:
                task.result()
        if idle not in done:
            log.warning(
                "%d frame(s) still in flight after %.1f s; stopping anyway",
                limiter.in_flight,
                self.config.drain_timeout_s,
            )

    # ---- the source side -------------------------------------------------------
    async def _feed(
        self, info: SourceInfo, worker: _Worker, first: Edge | _RelayIn, limiter: FlowLimiter
    ) -> str:
        live = self.config.mode is RunMode.LIVE
        interval = _pace_interval_ns(info) if live else None
        start = self.clock.now_ns()
        due = start
        seq = 0
        while True:
            stop_reason = self._limit_reached(seq, start)
            if stop_reason:
                return stop_reason
            if interval is not None:
                due = max(due, self.clock.now_ns() - interval)  # late: no burst
                await self.clock.sleep_until(due)
                due += interval
            got = await self._read(worker)
            if got is None:
                return "end-of-stream"
            frame = self._envelope(seq, got)
            seq += 1
            self.metrics.record_in(self.clock.now_ns())
            if frame is None:
                continue
            if live:
                self._admit_live(frame, first, limiter)
            else:
                assert not isinstance(first, _RelayIn)  # relays are live only
                await limiter.acquire()
                frame.admitted_ns = self.clock.now_ns()
                await first.put(frame)

    def _limit_reached(self, seq: int, start_ns: int) -> str | None:
        cfg = self.config
        if cfg.max_frames is not None and seq >= cfg.max_frames:
            return "max-frames"
        if cfg.duration_s is not None and self.clock.now_ns() - start_ns >= cfg.duration_s * 1e9:
            return "duration"
        return None

    async def _read(self, worker: _Worker) -> SourceFrame | None:
        try:
            got = await worker.call(self.source.read)
        except Exception as exc:
            raise SourceFailedError(f"source {self.source.name!r} failed: {exc}") from exc
        if got is not None and not isinstance(got, SourceFrame):
            raise SourceFailedError(f"source {self.source.name!r} read() returned {got!r}")
        return got

    def _envelope(self, seq: int, got: SourceFrame) -> Frame | None:
        """The frame around ``got``; ``None`` when its picture is refused (`_reject`)."""
        try:
            image = check_image(got.image, what=f"frame {seq} from source {self.source.name!r}")
        except ValueError as exc:
            self._reject(exc)
            return None
        self._rejected_in_a_row = 0
        capture_ns = got.capture_ns if got.capture_ns is not None else self.clock.now_ns()
        return Frame(
            seq=seq,
            capture_ns=capture_ns,
            image=image,
            pts=got.pts,
            time_base=got.time_base or DEFAULT_TIME_BASE,
            source_work=self._source_work(capture_ns, got.work_ns),
        )

    def _source_work(self, capture_ns: int, work_ns: tuple[int, int] | None) -> StageTiming | None:
        """The source's timed work, if it lies between capture and now (else ignored)."""
        if work_ns is None:
            return None
        start, end = work_ns
        if not capture_ns <= start <= end <= self.clock.now_ns():
            return None
        return StageTiming(self.source.name, start, end)

    def _reject(self, exc: ValueError) -> None:
        """Drop and count a picture that is not ``(H, W, 3)`` uint8, as a stage drops a frame
        it fails on; ``max_consecutive_errors`` of them in a row stop the run."""
        self._rejected_in_a_row += 1
        self.metrics.frames_rejected += 1
        log.warning("%s; frame dropped", exc)
        if self._rejected_in_a_row >= self.config.max_consecutive_errors:
            raise SourceFailedError(f"{exc} ({self._rejected_in_a_row} such frames in a row)"
                                    ) from exc

    def _admit_live(self, frame: Frame, first: Edge | _RelayIn, limiter: FlowLimiter) -> None:
        """Admit a new frame, preferring it over one still waiting at the head.

        A frame still waiting is replaced: the new one takes a token even at
        the limit, and the edge's drop of the old one gives that token back.
        With nothing to replace and no token free, the limiter drops the new one,
        and the adaptive controller learns that the limit was binding. A head
        relay is asked while its worker cannot take the waiting frame.
        """

        def admit(replacing: bool) -> bool:
            if not limiter.try_acquire(replacing=replacing):
                return False
            frame.admitted_ns = self.clock.now_ns()
            return True

        if isinstance(first, _RelayIn):
            admitted = first.relay.offer(frame, admit)
        else:
            assert isinstance(first, LiveEdge)
            admitted = admit(first.qsize() > 0)
            if admitted:
                first.put_nowait(frame)
        if not admitted and self._controller is not None:
            self._controller.note_refused()

    # ---- the stage side ----------------------------------------------------------
    async def _segment_loop(
        self,
        segment: Segment,
        worker: _Worker | None,
        inp: Edge,
        out: Edge | _RelayIn | None,
        limiter: FlowLimiter,
    ) -> None:
        failures = _Streaks(segment.stages)
        relay = out.relay if isinstance(out, _RelayIn) else None
        while True:
            frame = await inp.get()
            if worker is None:
                result, steps = run_segment(self.clock, segment, frame)
            else:
                result, steps = await worker.call(_run_and_hand_on, self.clock, segment, frame,
                                                  relay)  # type: ignore[misc]
            self._account(steps, frame, failures)
            if result is None:
                if steps[-1].error is None:  # the stage returned None on purpose
                    self.metrics.stages[steps[-1].stage.name].filtered += 1
                limiter.release()
            elif relay is not None:
                pass  # the worker handed it on
            elif out is not None:
                await out.put(result)  # type: ignore[union-attr]
            else:
                self._deliver(result, limiter)
                limiter.release()

    def _account(self, steps: list[Step], frame: Frame, failures: _Streaks) -> None:
        """Count what each stage did with the frame; too many failures in a row stop the run."""
        for step in steps:
            name = step.stage.name
            if step.error is not None:
                in_a_row = failures.failed(name, frame.seq)
                self._on_failure(step.stage, frame, step.error, in_a_row)
                return
            failures.succeeded(name, frame.seq)
            self.metrics.record_stage(name, step.start_ns, step.end_ns)

    def _on_failure(self, stage: Stage, frame: Frame, exc: Exception, failures: int) -> None:
        counters = self.metrics.stages[stage.name]
        counters.errors += 1
        first = counters.errors == 1
        log.warning(
            "stage %r failed on frame %d (%s: %s); frame dropped",
            stage.name,
            frame.seq,
            type(exc).__name__,
            exc,
            exc_info=exc if first else None,
        )
        if failures >= self.config.max_consecutive_errors:
            raise StageFailedError(
                f"stage {stage.name!r} failed on {failures} consecutive frames; "
                f"last error: {type(exc).__name__}: {exc}"
            ) from exc

    def _deliver(self, frame: Frame, limiter: FlowLimiter) -> None:
        """Count ``frame`` delivered when the sink returned it (the end of its
        trace): the loop hears of it later, after a wake-up that beside busy
        programs waits for a core while the picture is already out."""
        if frame.seq <= self._last_seq:
            self._order_preserved = False
        self._last_seq = frame.seq
        counted = self.clock.now_ns()
        delivered = frame.trace[-1].end_ns if frame.trace else counted
        self.metrics.record_out(frame, delivered, counted)
        self._adapt(frame, delivered, limiter)

    def _adapt(self, frame: Frame, now_ns: int, limiter: FlowLimiter) -> None:
        """Tell the controller how long the frame took and waited; apply its limit."""
        if self._controller is None or frame.admitted_ns is None:
            return
        latency_s = (now_ns - frame.admitted_ns) / 1e9
        self._controller.observe(latency_s, frame.service_ns / 1e9, now_ns / 1e9)
        limiter.set_limit(self._controller.limit)

    async def _status_loop(self) -> None:
        assert self._on_status is not None
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            self._on_status(self.metrics.status_line(now_ns=self.clock.now_ns()))


def _pace_interval_ns(info: SourceInfo) -> int | None:
    if info.self_paced or info.frame_rate is None or info.frame_rate <= 0:
        return None
    return round(1e9 / float(info.frame_rate))


async def _cancel_all(tasks: list[asyncio.Task[object]]) -> None:
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception) and not isinstance(
            result, StageFailedError | SourceFailedError
        ):
            log.debug("task %s ended with %r", task.get_name(), result)


def run_pipeline(
    source: Source,
    stages: Sequence[Stage],
    config: RuntimeConfig | None = None,
    **kwargs: object,
) -> RunReport:
    """Synchronous convenience: build a `Pipeline` and run it to the end."""
    pipeline = Pipeline(source, stages, config, **kwargs)  # type: ignore[arg-type]
    return asyncio.run(pipeline.run())
