"""Stream and event plumbing for stages that overlap on the GPU.

Each GPU stage owns a `DeviceStream`; it runs its work with the stream made
current (``with stream.activate():``), records an event on its output, and
the next stage (in another thread) makes its own stream wait on that event.
Streams are passed to the code that enqueues work, never captured by it.

Both implementations carry a host-side "recorded" flag (a ``threading.Event``)
on every event. On CUDA, waiting on a never-recorded event is silently a
no-op, which would turn a producer/consumer race into wrong pixels; here a
wait first blocks the host until the producer has *enqueued* the record (not
until the GPU work finished), so ordering bugs surface as timeouts instead.
On the CPU stand-in, work is synchronous, so "recorded" also means "done".

Timing uses events too: ``stream.new_event(timing=True)`` before and after
the work, then ``stream.elapsed_ms(start, end)``. On CUDA that is the GPU's
own clock between the two points of the stream (what the work cost there,
not what the host waited); on the CPU it is the host clock at each record.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch

DEFAULT_WAIT_S = 30.0


class StreamEvent:
    """A point in a stream's work; see the module docstring for the host flag.

    Attributes:
        raw: the ``torch.cuda.Event`` on CUDA; ``None`` on the CPU.
        timing: made with ``timing=True``, so `DeviceStream.elapsed_ms` may use it.
        host_time: the CPU stand-in's clock when it was recorded (``None``
            on CUDA, and before the record).
    """

    def __init__(self, raw: Any = None, *, timing: bool = False) -> None:
        self.raw = raw
        self.timing = timing
        self.host_time: float | None = None
        self._recorded = threading.Event()

    @property
    def recorded(self) -> bool:
        return self._recorded.is_set()

    def mark_recorded(self) -> None:
        self._recorded.set()

    def wait_recorded(self, timeout: float = DEFAULT_WAIT_S) -> None:
        """Block the host until a stream recorded this event; `TimeoutError` after ``timeout``."""
        if not self._recorded.wait(timeout):
            raise TimeoutError(
                f"event not recorded within {timeout:g} s: the producing stage never "
                "recorded it (or stopped); check that it calls stream.record(event)"
            )

    def synchronize(self, timeout: float = DEFAULT_WAIT_S) -> None:
        """Block the host until the work before this event is done."""
        self.wait_recorded(timeout)
        if self.raw is not None:
            self.raw.synchronize()


@runtime_checkable
class DeviceStream(Protocol):
    """An ordered queue of device work.

    Attributes:
        device: the device the stream belongs to.
        handle: the native handle (``cudaStream_t`` as an int; 0 on the CPU).
    """

    device: torch.device

    @property
    def handle(self) -> int: ...

    def new_event(self, timing: bool = False) -> StreamEvent:
        """An event to record later (e.g. created by the consumer side);
        ``timing=True`` for the events `elapsed_ms` measures between."""
        ...

    def record(self, event: StreamEvent | None = None) -> StreamEvent:
        """Record ``event`` (a new one if ``None``) after the work enqueued so far."""
        ...

    def wait(self, event: StreamEvent) -> None:
        """Make later work on this stream wait for ``event``."""
        ...

    def synchronize(self) -> None:
        """Block the host until all enqueued work is done."""
        ...

    def elapsed_ms(self, start: StreamEvent, end: StreamEvent) -> float:
        """Milliseconds of stream work between two recorded timing events.

        Waits for ``end``; `ValueError` when either was not made with
        ``timing=True`` or never recorded.
        """
        ...

    def activate(self) -> contextlib.AbstractContextManager[None]:
        """A context in which this stream is the current one for torch ops."""
        ...


class CpuStream:
    """The CPU stand-in: work is synchronous, events are ``threading.Event``s.

    Args:
        wait_timeout: how long `wait` blocks for an unrecorded event before
            raising `TimeoutError` (a stalled producer must not hang a stage).
        clock: stamps each record (seconds), for `elapsed_ms`; injectable
            for tests.
    """

    handle = 0

    def __init__(self, wait_timeout: float = DEFAULT_WAIT_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.device = torch.device("cpu")
        self.wait_timeout = wait_timeout
        self.clock = clock

    def new_event(self, timing: bool = False) -> StreamEvent:
        return StreamEvent(timing=timing)

    def record(self, event: StreamEvent | None = None) -> StreamEvent:
        event = self.new_event() if event is None else event
        if event.timing:
            event.host_time = self.clock()
        event.mark_recorded()  # everything the caller did before this is already done
        return event

    def wait(self, event: StreamEvent) -> None:
        # On the CPU the host *is* the device: wait here until the producer is done.
        event.wait_recorded(self.wait_timeout)

    def synchronize(self) -> None:
        """Nothing is ever pending on the CPU."""

    def elapsed_ms(self, start: StreamEvent, end: StreamEvent) -> float:
        _check_timing(start, end)
        if start.host_time is None or end.host_time is None:
            raise ValueError("timing events of another stream kind cannot be timed on the CPU")
        return (end.host_time - start.host_time) * 1000

    def activate(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _check_timing(start: StreamEvent, end: StreamEvent) -> None:
    if not (start.timing and end.timing):
        raise ValueError("elapsed_ms needs two events made with new_event(timing=True)")
    if not (start.recorded and end.recorded):
        raise ValueError("elapsed_ms needs both events recorded on the stream first")


class CudaStream:
    """A ``torch.cuda.Stream`` on an explicit device, with `StreamEvent`s.

    Args:
        device: a CUDA device such as ``torch.device("cuda", 0)``.
        wait_timeout: see `CpuStream`.
    """

    def __init__(self, device: torch.device | str, wait_timeout: float = DEFAULT_WAIT_S) -> None:
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"CudaStream needs a CUDA device, got {self.device}")
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available to torch; use CpuStream on this machine")
        self.wait_timeout = wait_timeout
        self._stream = torch.cuda.Stream(device=self.device)

    @property
    def handle(self) -> int:
        return int(self._stream.cuda_stream)

    @property
    def torch_stream(self) -> torch.cuda.Stream:
        return self._stream

    def new_event(self, timing: bool = False) -> StreamEvent:
        return StreamEvent(torch.cuda.Event(enable_timing=timing), timing=timing)

    def record(self, event: StreamEvent | None = None) -> StreamEvent:
        event = self.new_event() if event is None else event
        event.raw.record(self._stream)
        event.mark_recorded()
        return event

    def wait(self, event: StreamEvent) -> None:
        event.wait_recorded(self.wait_timeout)  # host waits only for the enqueue
        if event.raw is None:
            raise ValueError("cannot make a CUDA stream wait on a CPU event")
        self._stream.wait_event(event.raw)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def elapsed_ms(self, start: StreamEvent, end: StreamEvent) -> float:
        _check_timing(start, end)
        end.synchronize(self.wait_timeout)
        return float(start.raw.elapsed_time(end.raw))

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        with torch.cuda.stream(self._stream):
            yield


def make_stream(device: torch.device | str,
                clock: Callable[[], float] = time.perf_counter) -> DeviceStream:
    """A `CudaStream` for a CUDA device, a `CpuStream` (stamping with ``clock``) otherwise."""
    device = torch.device(device)
    return CudaStream(device) if device.type == "cuda" else CpuStream(clock=clock)
