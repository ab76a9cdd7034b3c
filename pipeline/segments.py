"""Which stages share a worker thread: segments of a chain.

Each hand-off between two threads costs two wake-ups (the worker's result
back to the event loop, the loop's next job to the next worker). On an idle
machine that is a few tenths of a millisecond; beside programs that keep the
cores busy a woken thread waits for one, and the hand-offs became the largest
part of a frame's latency: measured on 2 cores beside 6 CPU burners, one
frame in flight through the avatar path's five blocking stages, 19 ms of a
53 ms latency went to the six hand-offs (about 3 ms each) against 34 ms in
the stages. More threads than cores cannot compute at once anyway, so the
blocking stages are dealt into as many threads as there are cores: a segment
is a run of consecutive blocking stages that one worker runs back to back,
frame by frame, with an edge (and a hand-off) only between segments. Each
stage is still timed and traced on its own, keeps its thread for ``start``,
``process`` and ``stop``, and a stage that fails or filters a frame ends the
frame's trip as before.

Consecutive non-blocking stages form one segment too, run back to back on
the event loop (they may touch the loop's objects, and each edge between them
would cost a turn of the loop, behind whatever else the loop has to do); a
non-blocking stage ends a run of blocking ones and the other way round.
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
    """Consecutive stages that run back to back: blocking ones on one worker thread,
    or non-blocking ones on the event loop."""

    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a segment needs at least one stage")
        if len({s.blocking for s in self.stages}) > 1:
            raise ValueError("blocking and non-blocking stages cannot share a segment")

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


def plan_segments(stages: Sequence[Stage], threads: int | None = None) -> list[Segment]:
    """Deal the blocking stages of ``stages`` into about ``threads`` segments, in order.

    Blocking segments hold ``ceil(blocking / threads)`` consecutive blocking
    stages at most (as even as the count allows); consecutive non-blocking
    stages make one segment, which ends the blocking run before it, so a chain
    broken up by non-blocking stages can get more threads than ``threads``.
    ``threads`` at or above the number of blocking stages gives every blocking
    stage its own thread. ``None``: `default_stage_threads`.
    """
    wanted = default_stage_threads() if threads is None else threads
    if wanted < 1:
        raise ValueError(f"stage threads must be >= 1, got {wanted}")
    blocking = sum(1 for s in stages if s.blocking)
    size = max(1, math.ceil(blocking / wanted)) if blocking else 1
    segments: list[Segment] = []
    run: list[Stage] = []
    for stage in stages:
        if run and (stage.blocking != run[0].blocking or (stage.blocking and len(run) == size)):
            segments.append(Segment(tuple(run)))
            run = []
        run.append(stage)
    if run:
        segments.append(Segment(tuple(run)))
    return segments


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
