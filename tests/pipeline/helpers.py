"""Small sources and stages for runtime tests (fakes of the real interfaces)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from pipeline.clock import ManualClock
from pipeline.frame import Frame
from pipeline.stage import SourceFrame, SourceInfo, StageBase


class ListSource:
    """Yields ``count`` tiny frames whose first pixel carries the index."""

    name = "list"

    def __init__(self, count: int, fps: float | None = None, self_paced: bool = False) -> None:
        self.count = count
        self.fps = None if fps is None else Fraction(fps)
        self.self_paced = self_paced
        self.sent = 0
        self.closed = False

    def open(self) -> SourceInfo:
        return SourceInfo(8, 4, self.fps, self.self_paced, self.count)

    def read(self) -> SourceFrame | None:
        if self.sent >= self.count:
            return None
        image = np.zeros((4, 8, 3), np.uint8)
        image[0, 0, 0] = self.sent % 256
        self.sent += 1
        return SourceFrame(image, pts=self.sent - 1, time_base=Fraction(1, 30))

    def close(self) -> None:
        self.closed = True


class Collect(StageBase):
    """A sink that keeps the sequence numbers it receives."""

    def __init__(self, name: str = "sink") -> None:
        self.name = name
        self.seqs: list[int] = []
        self.started = self.stopped = False
        self.thread_names: set[str] = set()

    def start(self) -> None:
        self.started = True
        self.thread_names.add(threading.current_thread().name)

    def process(self, frame: Frame) -> Frame:
        self.thread_names.add(threading.current_thread().name)
        self.seqs.append(frame.seq)
        return frame

    def stop(self) -> None:
        self.stopped = True
        self.thread_names.add(threading.current_thread().name)


class Gate(StageBase):
    """Blocks each frame until the test opens the gate; records what it saw."""

    def __init__(self, name: str = "gate") -> None:
        self.name = name
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)
        self.seen: list[int] = []

    def process(self, frame: Frame) -> Frame:
        self.seen.append(frame.seq)
        self.entered.release()
        self.open.wait(timeout=30)
        return frame


class FailOn(StageBase):
    """Raises on chosen sequence numbers (or on every frame)."""

    def __init__(self, bad: set[int] | None, name: str = "flaky") -> None:
        self.name = name
        self.bad = bad

    def process(self, frame: Frame) -> Frame:
        if self.bad is None or frame.seq in self.bad:
            raise ValueError(f"cannot handle frame {frame.seq}")
        return frame


@dataclass(frozen=True)
class FaceBoxStub:
    x: int


@dataclass(frozen=True)
class MotionStub:
    v: int


class MakesBox(StageBase):
    name = "detect"
    produces = frozenset({FaceBoxStub})

    def process(self, frame: Frame) -> Frame:
        frame.put(FaceBoxStub(frame.seq))
        return frame


class NeedsBox(StageBase):
    name = "encode"
    needs = frozenset({FaceBoxStub})
    produces = frozenset({MotionStub})

    def process(self, frame: Frame) -> Frame:
        frame.put(MotionStub(frame.get(FaceBoxStub).x * 2))
        return frame


class Busy(StageBase):
    """Costs ``ms`` of a `ManualClock` per frame, on the event loop.

    Non-blocking, so stages never overlap: the graph can use only one frame
    in flight, and more only wait.
    """

    blocking = False

    def __init__(self, clock: ManualClock, ms: float, name: str = "busy") -> None:
        self.name = name
        self.clock = clock
        self.ns = round(ms * 1e6)

    def process(self, frame: Frame) -> Frame:
        self.clock.advance(self.ns)
        return frame
