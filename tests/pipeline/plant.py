"""A discrete-event model of the live graph, to test the in-flight controller.

It mirrors the runtime's live policies: a paced source, a head with tokens
(a new frame replaces one still waiting at the head, else takes a free token,
else is refused), capacity-1 drop-oldest edges, one worker per stage. Stage
costs are CPU seconds at full speed, scripted as functions of the time the
stage starts; ``cores(t)`` is the CPU capacity left to the graph, shared
equally by the busy stages (processor sharing), so overlap pays only while
there are cores for it. A frame's service time is the wall time its stages
spent on it, like the runtime's trace. No real time passes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Cost = Callable[[float], float]


class HeadLimit(Protocol):
    """What the plant needs of a controller (`InFlightController` or `FixedLimit`)."""

    @property
    def limit(self) -> int: ...

    def note_refused(self) -> None: ...

    def observe(self, latency_s: float, service_s: float, delivered_at_s: float) -> None: ...


class FixedLimit:
    """The fixed limiter, for comparison: ``limit`` never moves."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def note_refused(self) -> None:
        pass

    def observe(self, latency_s: float, service_s: float, delivered_at_s: float) -> None:
        pass


def constant(seconds: float) -> Cost:
    return lambda _t: seconds


def step(before: float, after: float, at: float, back_at: float = math.inf) -> Cost:
    """``before``, then ``after`` from ``at`` until ``back_at``."""
    return lambda t: after if at <= t < back_at else before


@dataclass
class SimFrame:
    admitted: float
    service: float = 0.0


@dataclass
class Busy:
    frame: SimFrame
    work: float  # CPU seconds left
    started: float


@dataclass
class Delivery:
    at: float
    latency: float
    service: float
    limit: int


@dataclass
class Plant:
    """The graph; `run` drives it and the controller for ``seconds`` of model time."""

    costs: list[Cost]
    fps: float
    controller: HeadLimit
    cores: Callable[[float], float] = lambda _t: math.inf
    now: float = 0.0
    in_flight: int = 0
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.edges: list[SimFrame | None] = [None] * len(self.costs)
        self.busy: list[Busy | None] = [None] * len(self.costs)
        self.next_tick = 0.0

    def run(self, seconds: float) -> Plant:
        end = self.now + seconds
        while self.now < end:
            rate = self._rate()
            done_at = self._next_completion(rate)
            at = min(self.next_tick, done_at, end)
            self._advance(at - self.now, rate)
            self.now = at
            self._finish_stages()
            if self.now >= self.next_tick:
                self._tick()
        return self

    def _rate(self) -> float:
        busy = sum(b is not None for b in self.busy)
        return min(1.0, self.cores(self.now) / busy) if busy else 1.0

    def _next_completion(self, rate: float) -> float:
        works = [b.work for b in self.busy if b is not None]
        return self.now + min(works) / rate if works else math.inf

    def _advance(self, dt: float, rate: float) -> None:
        for b in self.busy:
            if b is not None:
                b.work -= dt * rate

    def _finish_stages(self) -> None:
        for i in reversed(range(len(self.busy))):
            b = self.busy[i]
            if b is not None and b.work <= 1e-12:
                self.busy[i] = None
                b.frame.service += self.now - b.started
                self._hand_on(i, b.frame)
                self._pull(i)

    def _hand_on(self, i: int, frame: SimFrame) -> None:
        if i + 1 == len(self.costs):
            self._deliver(frame)
            return
        if self.edges[i + 1] is not None:
            self._release()  # drop-oldest: the replaced frame leaves the graph
        self.edges[i + 1] = frame
        self._pull(i + 1)

    def _pull(self, i: int) -> None:
        frame = self.edges[i]
        if frame is not None and self.busy[i] is None:
            self.edges[i] = None
            self.busy[i] = Busy(frame, self.costs[i](self.now), self.now)

    def _tick(self) -> None:
        self.next_tick += 1.0 / self.fps
        if self.edges[0] is None and self.in_flight >= self.controller.limit:
            self.controller.note_refused()
            return
        if self.edges[0] is not None:
            self._release()  # replaced at the head
        self.in_flight += 1
        self.edges[0] = SimFrame(self.now)
        self._pull(0)

    def _deliver(self, frame: SimFrame) -> None:
        latency = self.now - frame.admitted
        self.deliveries.append(Delivery(self.now, latency, frame.service, self.controller.limit))
        self.controller.observe(latency, frame.service, self.now)
        self._release()

    def _release(self) -> None:
        self.in_flight -= 1

    # ---- figures over a span of model time ---------------------------------
    def between(self, start: float, end: float) -> list[Delivery]:
        return [d for d in self.deliveries if start <= d.at < end]

    def throughput(self, start: float, end: float) -> float:
        return len(self.between(start, end)) / (end - start)

    def waiting(self, start: float, end: float) -> float:
        """Median latency/service of the frames delivered in the span."""
        return statistics.median(d.latency / d.service for d in self.between(start, end))

    def limits(self, start: float, end: float) -> list[int]:
        return [d.limit for d in self.between(start, end)]

    def share_at(self, limit: int, start: float, end: float) -> float:
        """Fraction of the span's deliveries that ran under ``limit``."""
        limits = self.limits(start, end)
        return limits.count(limit) / len(limits)
