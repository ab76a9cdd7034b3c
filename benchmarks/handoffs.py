"""Where a frame's hand-offs between threads go: queueing, or waking up.

A frame waits in front of a segment (`pipeline.segments`: stages one worker
thread runs back to back) for one of two reasons. Either that thread is still
busy with the frame before it: a queue, which the head's in-flight limit
governs. Or the thread is free and must be woken, get a core and the GIL:
a cost of the hand-off itself, which no limit changes (beside busy programs
each wake-up waits for a core). `HandoffTap` is a null sink that keeps each
delivered frame's admission time and stage times; `handoff_figures` splits
the wait in front of each segment into the two.

A frame that passed a segment and was dropped after it (an edge replaced it)
kept that segment busy but never reaches the tap, so the queueing it caused
is counted as waking: the split is a lower bound on queueing where frames
are dropped between segments.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.frame import Frame
from stages.io import NullSink


@dataclass(frozen=True, slots=True)
class FrameTimes:
    """One delivered frame: when the head admitted it, and each stage's start and end."""

    admitted_ns: int
    stages: dict[str, tuple[int, int]]


class HandoffTap(NullSink):
    """A null sink that keeps the last ``keep`` frames' `FrameTimes`."""

    def __init__(self, keep: int = 100_000) -> None:
        super().__init__()
        self.frames: deque[FrameTimes] = deque(maxlen=keep)

    def process(self, frame: Frame) -> Frame:
        out = super().process(frame)
        if frame.admitted_ns is not None:
            stages = {t.stage: (t.start_ns, t.end_ns) for t in frame.trace}
            self.frames.append(FrameTimes(frame.admitted_ns, stages))
        return out


def handoff_figures(frames: Sequence[FrameTimes],
                    segments: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Per segment (named by its first stage): the mean wait in front of it
    (``wait_ms``: from admission, or the previous segment's end, to its start),
    the mean part of that spent behind the frame before it (``queued_ms``), and
    the share of frames that queued at all (``queued_share``). Frames missing
    a segment's stages are skipped for it; ``{}`` for a segment no frame ran."""
    waits: list[list[tuple[float, float]]] = [[] for _ in segments]
    busy_until: list[int | None] = [None] * len(segments)
    for frame in frames:
        for i in range(len(segments)):
            split = _split(frame, segments, i, busy_until[i])
            if split is not None:
                waits[i].append(split)
        for i, names in enumerate(segments):
            ends = [frame.stages[name][1] for name in names if name in frame.stages]
            if ends:
                busy_until[i] = max(ends)
    return {names[0]: _summary(pairs) for names, pairs in zip(segments, waits, strict=True)}


def _split(frame: FrameTimes, segments: Sequence[Sequence[str]], index: int,
           busy_until: int | None) -> tuple[float, float] | None:
    """``(wait_ms, queued_ms)`` in front of segment ``index``; ``None`` if not measurable."""
    first = segments[index][0]
    if first not in frame.stages:
        return None
    if index == 0:
        ready = frame.admitted_ns
    else:
        before = [frame.stages[n][1] for n in segments[index - 1] if n in frame.stages]
        if not before:
            return None
        ready = max(before)
    start = frame.stages[first][0]
    queued = 0 if busy_until is None else max(0, min(busy_until, start) - ready)
    return (start - ready) / 1e6, queued / 1e6


def _summary(pairs: list[tuple[float, float]]) -> dict[str, float]:
    if not pairs:
        return {}
    return {"wait_ms": statistics.mean(w for w, _ in pairs),
            "queued_ms": statistics.mean(q for _, q in pairs),
            "queued_share": sum(1 for _, q in pairs if q > 0) / len(pairs)}
