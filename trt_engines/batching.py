"""One engine call for the requests of many sessions: `EngineBatcher` and its members.

Every live session of ``vicocam serve`` runs the same two model engines once
per frame. Called one by one, N sessions make N small calls a tick (and, with
TensorRT, would need N execution contexts); the exported graphs take a dynamic
batch, so one call can serve them all. An `EngineBatcher` wraps one engine;
each session joins it and gets a `BatchMember`, an `Engine` of its own that the
session's stages call exactly as before (``run`` with a batch of one).

How a batch forms. At most ``lanes`` calls run on the engine at once (one for
a GPU or TensorRT engine; one per core for a thread-safe CPU engine, see
`default_lanes`). A request that finds a lane free leads: it waits while another *active* member's
next request is *due* before the deadline (``max_wait_s`` from now), then
takes up to ``max_batch`` waiting requests, concatenates them along the batch
dim, runs the engine once and hands each member its own slice. Requests that
arrive while every lane is busy wait for the next free one, so a saturated
engine batches by itself. A member is due when its last request plus its usual gap between
requests falls before the deadline: sessions whose frames arrive in step are
gathered, sessions at unrelated phases of the frame period are not waited
for (waiting would only add latency). A member is active while it has
submitted within ``active_window_s``: a session whose face is lost or whose
frames were dropped upstream stops holding the others back after that
window, and a lone session never waits, so batch size 1 is the plain engine
call.

Isolation. Each request is checked against the engine's inputs in its own
thread before it joins a batch, so a malformed request fails only its caller.
If a batched call still raises, its requests are run one by one and each
gets its own result or error. A member that stalls only costs the others up
to ``max_wait_s``. Results are copied out of the engine's buffers before the
next call (TensorRT returns views that the next call overwrites), which also
makes an engine that is not thread-safe safe to share through the batcher.

On a CUDA device a request's inputs are made on the caller's stream and the
call runs on the leader's: the caller synchronises its stream before
submitting and the leader synchronises after the call, so every member reads
finished results (the overlap between stages is kept; only the batched call
itself is a synchronisation point).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import torch

from pipeline.segments import usable_cores
from trt_engines.engine import Engine, TensorSpec, validate_feeds

Feeds = Mapping[str, torch.Tensor]
Outputs = dict[str, torch.Tensor]


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """How an `EngineBatcher` forms batches.

    Attributes:
        max_batch: most requests in one call (the engine's profile must take it).
        max_wait_s: longest a leader waits for the other active members;
            ``None`` = `default_wait_s`.
        active_window_s: a member that has not submitted for this long is
            not waited for.
        lanes: engine calls that may run at once; ``None`` = `default_lanes`.
    """

    max_batch: int = 4
    max_wait_s: float | None = None
    active_window_s: float = 0.25
    lanes: int | None = None

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.lanes is not None and self.lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {self.lanes}")
        if (self.max_wait_s or 0) < 0 or self.active_window_s <= 0:
            raise ValueError("max_wait_s must be >= 0 and active_window_s > 0, got "
                             f"{self.max_wait_s} and {self.active_window_s}")


@dataclass(slots=True)
class _Pace:
    """When a member joined or last submitted, and its usual gap between requests (smoothed)."""

    last: float
    interval: float | None = None
    submits: int = 0

    def submitted(self, now: float) -> None:
        if self.submits:  # the gap from joining says nothing about the pace
            gap = now - self.last
            self.interval = gap if self.interval is None else 0.7 * self.interval + 0.3 * gap
        self.submits += 1
        self.last = now

    def active(self, now: float, window: float) -> bool:
        return now - self.last <= window

    def due_by(self, when: float) -> bool:
        """Whether its next request is expected by ``when`` (unknown pace: not expected)."""
        return self.interval is not None and self.last + self.interval <= when


class _Request:
    """One member's feeds, and its result or error once a call has run."""

    __slots__ = ("done", "error", "feeds", "member", "outputs")

    def __init__(self, member: int, feeds: Feeds) -> None:
        self.member = member
        self.feeds = feeds
        self.done = False
        self.outputs: Outputs | None = None
        self.error: BaseException | None = None

    def result(self) -> Outputs:
        if self.error is not None:
            raise self.error
        assert self.outputs is not None
        return self.outputs


@dataclass(slots=True)
class BatchStats:
    """What a batcher has done: calls made and how many requests each served."""

    calls: int = 0
    requests: int = 0
    sizes: deque[int] | None = None

    def record(self, size: int) -> None:
        self.calls += 1
        self.requests += size
        if self.sizes is not None:
            self.sizes.append(size)


class EngineBatcher:
    """Serves the `run` calls of many members with as few engine calls as it can.

    See the module docstring. The batcher does not own ``engine``: close the
    engine after the last member has left.
    """

    def __init__(self, engine: Engine, config: BatchConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic, history: int = 4096) -> None:
        self.engine = engine
        self.config = config or BatchConfig()
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: list[_Request] = []
        self.lanes = self.config.lanes or default_lanes(engine)
        wait = self.config.max_wait_s
        self.max_wait_s = default_wait_s(engine) if wait is None else wait
        self._running = 0
        self._pace: dict[int, _Pace] = {}
        self._next_id = 0
        self.stats = BatchStats(sizes=deque(maxlen=history))

    # ---- members ----------------------------------------------------------------
    def join(self, name: str | None = None) -> BatchMember:
        """A new member: an `Engine` whose ``run`` goes through this batcher."""
        with self._cond:
            self._next_id += 1
            member_id = self._next_id
            self._pace[member_id] = _Pace(self._clock())
        return BatchMember(self, member_id, name or f"{self.engine.name}#{member_id}")

    def leave(self, member_id: int) -> None:
        with self._cond:
            self._pace.pop(member_id, None)
            self._cond.notify_all()

    @property
    def members_active(self) -> int:
        with self._cond:
            return self._active(self._clock())

    def batch_sizes(self) -> list[int]:
        """The sizes of the recent calls, oldest first."""
        with self._cond:
            return list(self.stats.sizes or ())

    # ---- a request --------------------------------------------------------------
    def submit(self, member_id: int, feeds: Feeds) -> Outputs:
        """Run ``feeds`` (a batch of one) in the next call; the member's own outputs."""
        validate_feeds(self.engine.inputs, feeds)
        _require_one(feeds)
        _sync_current_stream(self.engine.device)
        request = _Request(member_id, feeds)
        if self._enqueue(request):
            self._lead(request)
        with self._cond:
            while not request.done:  # served by another lane's call
                self._cond.wait()
        return request.result()

    def _enqueue(self, request: _Request) -> bool:
        """Queue ``request``; wait until it is served (False) or may lead a call (True)."""
        with self._cond:
            pace = self._pace.get(request.member)
            if pace is not None:
                pace.submitted(self._clock())
            self._waiting.append(request)
            self._cond.notify_all()
            while not request.done:
                if self._running < self.lanes and request in self._waiting:
                    self._running += 1
                    return True
                self._cond.wait()
            return False

    def _lead(self, own: _Request) -> None:
        """Gather a batch, run it, hand out the results, and free the lane."""
        batch: list[_Request] = []
        try:
            batch = self._gather(own)
            if batch:
                self._finish(batch, self._outcomes(batch))
        except BaseException as error:  # e.g. KeyboardInterrupt: nobody may wait forever
            self._finish([r for r in batch if not r.done], None, error)
            raise
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _gather(self, own: _Request) -> list[_Request]:
        """``own`` (unless another lane took it meanwhile) and the oldest others waiting."""
        config = self.config
        with self._cond:
            deadline = self._clock() + self.max_wait_s
            while len(self._waiting) < min(config.max_batch, self._expected(deadline)):
                left = deadline - self._clock()
                if left <= 0:
                    break
                self._cond.wait(left)
            if own in self._waiting:
                self._waiting.remove(own)
                self._waiting.insert(0, own)
            batch = self._waiting[:config.max_batch]
            del self._waiting[:config.max_batch]
            return batch

    def _active(self, now: float) -> int:
        window = self.config.active_window_s
        return sum(1 for pace in self._pace.values() if pace.active(now, window))

    def _expected(self, deadline: float) -> int:
        """Requests waiting, plus those of active members due before ``deadline``."""
        now, window = self._clock(), self.config.active_window_s
        waiting = {r.member for r in self._waiting}
        due = sum(1 for member, pace in self._pace.items()
                  if member not in waiting and pace.active(now, window) and pace.due_by(deadline))
        return len(self._waiting) + due

    def _outcomes(self, batch: list[_Request]) -> list[Outputs | Exception]:
        """Each request's outputs; after a failed batched call, each run alone."""
        try:
            return list(self._call(batch))
        except Exception as error:
            if len(batch) == 1:
                return [error]
            return [_attempt(self._call, request) for request in batch]

    def _finish(self, batch: list[_Request], outcomes: list[Outputs | Exception] | None,
                error: BaseException | None = None) -> None:
        with self._cond:
            for i, request in enumerate(batch):
                result = error if outcomes is None else outcomes[i]
                if isinstance(result, BaseException):
                    request.error = result
                else:
                    request.outputs = result
                request.done = True
            if outcomes is not None:
                self.stats.record(len(batch))
            self._cond.notify_all()

    def _call(self, batch: Sequence[_Request]) -> list[Outputs]:
        """One engine call for ``batch``; each request's outputs, copied out of the engine."""
        feeds = _stack([r.feeds for r in batch])
        outputs = self.engine.run(feeds)
        split = {name: value.split(1) for name, value in outputs.items()}
        results = [{name: parts[i].clone() for name, parts in split.items()}
                   for i in range(len(batch))]
        _sync_current_stream(self.engine.device)
        return results


def _attempt(call: Callable[[list[_Request]], list[Outputs]],
             request: _Request) -> Outputs | Exception:
    try:
        return call([request])[0]
    except Exception as error:  # handed to the request's own caller
        return error


def _stack(feeds: Sequence[Feeds]) -> dict[str, torch.Tensor]:
    if len(feeds) == 1:
        return dict(feeds[0])
    return {name: torch.cat([f[name] for f in feeds]) for name in feeds[0]}


def default_wait_s(engine: Engine) -> float:
    """How long a leader waits for due members: 4 ms on a GPU, none on the CPU.

    On a GPU a batch of four costs little more than one call, so gathering is
    worth a few milliseconds. On the CPU a batch costs nearly its parts
    (measured with the bundled model on ONNX Runtime: generate 3.7 ms alone,
    3.2 ms a frame in fours; motion no gain), so waiting would only add
    latency: requests that queue while the lanes are busy are still batched.
    """
    return 0.0 if engine.device.type == "cpu" else 0.004


def default_lanes(engine: Engine) -> int:
    """Calls at once: one per usable core for a thread-safe CPU engine, else one.

    On the CPU an engine call keeps one core busy (the model engines run one
    intra-op thread), so one lane would leave the other cores idle while
    requests queue; a GPU engine (and any engine that is not thread-safe,
    TensorRT's one execution context) takes one call at a time.
    """
    if not engine.shareable or engine.device.type != "cpu":
        return 1
    return usable_cores()


def _require_one(feeds: Feeds) -> None:
    sizes = {name: int(t.shape[0]) for name, t in feeds.items() if t.dim() > 0}
    if any(size != 1 for size in sizes.values()):
        raise ValueError(f"a batch member sends one frame per call; got batch sizes {sizes}")


def _sync_current_stream(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


class BatchMember:
    """One session's view of an `EngineBatcher`: an `Engine` with a batch of one.

    ``close`` leaves the batcher (the shared engine stays open).
    """

    shareable = False  # one member per session: its stages call it one at a time

    def __init__(self, batcher: EngineBatcher, member_id: int, name: str) -> None:
        self.batcher = batcher
        self.member_id = member_id
        self.name = name
        self.backend = batcher.engine.backend
        self.device = batcher.engine.device
        self._closed = False

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.batcher.engine.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.batcher.engine.outputs

    def run(self, feeds: Feeds) -> Outputs:
        if self._closed:
            raise RuntimeError(f"engine {self.name!r} is closed")
        return self.batcher.submit(self.member_id, feeds)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.batcher.leave(self.member_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
