"""A sink that writes nowhere: counts frames and keeps the last one."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.frame import Frame, check_image
from pipeline.stage import StageBase


@dataclass(frozen=True, slots=True)
class NullSinkConfig:
    """Settings of `NullSink`.

    Attributes:
        name: stage name in the graph.
    """

    name: str = "null_sink"


class NullSink(StageBase):
    """Counts the frames that reach it and keeps the last one; writes nothing.

    For benchmarks (the graph's cost without any output) and tests (what came
    out, in which order). ``count`` and ``last`` are read after the run;
    ``last`` is ``None`` until a frame arrives. ``blocking`` is False: the
    work is a counter increment, too small for a worker thread.
    """

    blocking = False

    def __init__(self, config: NullSinkConfig | None = None) -> None:
        self.config = config or NullSinkConfig()
        self.name = self.config.name
        self.count = 0
        self.last: Frame | None = None

    def process(self, frame: Frame) -> Frame:
        check_image(frame.image, what=f"{self.name} input frame {frame.seq}")
        self.count += 1
        self.last = frame
        return frame
