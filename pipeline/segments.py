"""Which stages share a worker thread: segments of a chain.

Each hand-off between two threads costs wake-ups: two through the event loop
(the worker's result back to the loop, the loop's next job to the next
worker), one where a live run's worker hands its frame straight to the next
(`pipeline.relay`). On an idle
machine that is a few tenths of a millisecond; with other programs on the
cores a woken thread waits for one: with a browser on the same two cores a
served frame spent 0.6-1.9 ms in each hand-off with a thread per stage
(`vicocam bench webrtc-model --no-pin --stage-threads 8`, "Latency where
users are" in benchmarks/RESULTS.md). More threads than cores cannot compute
at once anyway, so the blocking stages are dealt into as many threads as
there are cores: a segment
is a run of consecutive blocking stages that one worker runs back to back,
frame by frame, with an edge (and a hand-off) only between segments. Each
stage is still timed and traced on its own, keeps its thread for ``start``,
``process`` and ``stop``, and a stage that fails or filters a frame ends the
frame's trip as before.

A non-blocking stage costs microseconds (`pipeline.stage.Stage`), so it goes
where it adds no hand-off: into the segment of the blocking stage before it,
in that stage's thread; non-blocking stages at the head of the chain, before
any blocking one, form one segment on the event loop. (In the served avatar
graph the bookkeeping stages between the compositor and the outgoing track
cost two hand-offs a frame when each ran on the loop.)

A blocking sink (the last stage: it hands each frame to an encoder, a
virtual camera, a file) wakes the output's own threads as it hands the frame
over. On a process that may run on one core only, those threads ran ahead
of the thread that woke them, which then waited with its next frame behind
them: there the sink keeps a thread of its own (`vicocam bench webrtc-model`,
server pinned to one core: the outgoing track's stage took 3.5-4 ms sharing
the compositor's thread against 0.8-1.4 ms in its own, and the runs stalled
3 times a minute instead of once). With more cores to run on, the woken
threads take another core, and a thread of its own only adds a hand-off:
with the browser on the same two cores the sink shares the last segment's
thread (server in->out 1.20 times the stages' sum against 1.53-1.70 in a
thread of its own). That was a sink that only converts the picture (under
a millisecond); one that also encodes it (a WebRTC session's VP8, 5-7 ms) is
as heavy as a model stage and would make the last segment the bottleneck,
so its owner asks for a thread of its own (`RuntimeConfig.sink_alone`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.clock import Clock
from pipeline.frame import Frame, StageTiming
from pipeline.stage import Stage


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive stages that run back to back: on one worker thread when the
    first is blocking (later non-blocking ones come along), else all
    non-blocking, on the event loop."""

    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a segment needs at least one stage")
        if not self.stages[0].blocking and any(s.blocking for s in self.stages):
            raise ValueError("a segment on the event loop cannot hold a blocking stage")

    @property
    def name(self) -> str:
        """The first stage's name: the segment's input edge is ``->name``."""
        return self.stages[0].name

    @property
    def blocking(self) -> bool:
        return self.stages[0].blocking


def default_stage_threads(cpus: int | None = None) -> int:
    """One worker thread for stages per core of the machine (``cpus`` overrides)."""
    return cpus if cpus is not None else os.cpu_count() or 1


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def plan_segments(stages: Sequence[Stage], threads: int | None = None, *,
                  sink_alone: bool | None = None) -> list[Segment]:
    """Deal the blocking stages of ``stages`` into about ``threads`` segments, in order.

    Worker segments hold ``ceil(blocking / threads)`` blocking stages at most
    (as even as the count allows) and the non-blocking stages that follow
    them; the non-blocking stages before the first blocking one make one
    segment on the event loop. ``threads`` at or above the number of blocking
    stages gives every blocking stage its own thread. ``None``:
    `default_stage_threads`. With ``sink_alone`` a blocking sink is not
    counted and gets a segment of its own; ``None``: when this process may
    run on one core only (`usable_cores`; see the module docstring).
    """
    wanted = default_stage_threads() if threads is None else threads
    if wanted < 1:
        raise ValueError(f"stage threads must be >= 1, got {wanted}")
    alone = usable_cores() < 2 if sink_alone is None else sink_alone
    sink = stages[-1] if alone and stages and stages[-1].blocking else None
    blocking = _count_blocking(stages) - (sink is not None)
    size = max(1, math.ceil(blocking / wanted)) if blocking else 1
    segments: list[Segment] = []
    run: list[Stage] = []
    for stage in stages:
        full = _count_blocking(run) == size or stage is sink
        if run and stage.blocking and (not run[0].blocking or full):
            segments.append(Segment(tuple(run)))
            run = []
        run.append(stage)
    if run:
        segments.append(Segment(tuple(run)))
    return segments


def _count_blocking(stages: Sequence[Stage]) -> int:
    return sum(1 for s in stages if s.blocking)


@dataclass(frozen=True, slots=True)
class Step:
    """What one stage of a segment did with a frame."""

    stage: Stage
    start_ns: int
    end_ns: int
    error: Exception | None = None


def run_segment(clock: Clock, segment: Segment, frame: Frame) -> tuple[Frame | None, list[Step]]:
    """Run ``frame`` through the segment's stages (in the segment's thread).

    Returns the frame the last stage returned, or ``None`` when a stage failed
    (its `Step` carries the error) or returned ``None``; and one `Step` per
    stage that ran. Every stage that returned a frame appends its timing to
    that frame's trace.
    """
    steps: list[Step] = []
    current = frame
    for stage in segment.stages:
        start = clock.now_ns()
        try:
            result = stage.process(current)
        except Exception as exc:
            steps.append(Step(stage, start, clock.now_ns(), exc))
            return None, steps
        end = clock.now_ns()
        steps.append(Step(stage, start, end))
        if result is None:
            return None, steps
        result.trace.append(StageTiming(stage.name, start, end))
        current = result
    return current, steps
