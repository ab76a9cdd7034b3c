"""The two interfaces the runtime moves frames between: `Source` and `Stage`.

A stage is one small class with one hot method, ``process(frame)``, that
returns the frame (changed or not) or ``None`` to drop it. Stages do not know
their neighbours, do not sleep for pacing, do not start threads: the runtime
runs the blocking stages in worker threads (one per core, consecutive stages
sharing one: `pipeline.segments`), so stages in different threads overlap,
and owns every policy (queues, drops, metrics, errors).

A sink is simply the last stage: it writes the frame somewhere and returns it
so the runtime can count it as delivered and measure end-to-end latency.

A source produces frames from a blocking ``read()`` that the runtime calls in
a worker thread. ``read()`` returns ``None`` at the end of the stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, Protocol, runtime_checkable

from pipeline.frame import Frame, Image


@runtime_checkable
class Stage(Protocol):
    """A step of the graph.

    Attributes:
        name: unique within a graph; used in logs, metrics and errors.
        needs: result types (see `Frame.put`) this stage reads; the graph is
            rejected before the first frame if no upstream stage produces one.
        produces: result types this stage stores on every frame it returns.
        blocking: ``True`` (the default for anything that computes) runs
            ``process`` in a worker thread (always the same one for a stage,
            perhaps shared with its neighbours); ``False`` is only for trivial
            bookkeeping (microseconds): it runs in the thread of the blocking
            stage before it, or on the event loop when none comes before.
    """

    name: str
    needs: ClassVar[frozenset[type]]
    produces: ClassVar[frozenset[type]]
    blocking: ClassVar[bool]

    def start(self) -> None:
        """Acquire resources (open files, load engines) before the first frame."""

    def process(self, frame: Frame) -> Frame | None:
        """Turn a frame into a frame, or return ``None`` to drop it."""

    def stop(self) -> None:
        """Release resources; called once, also after errors."""


class StageBase:
    """Defaults for the optional parts of `Stage`; subclass and set ``name``."""

    name: str = "stage"
    needs: ClassVar[frozenset[type]] = frozenset()
    produces: ClassVar[frozenset[type]] = frozenset()
    blocking: ClassVar[bool] = True

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source tells the runtime before the first frame.

    Attributes:
        width, height: picture size of every frame the source will produce.
        frame_rate: nominal rate, or ``None`` for a source with no rate (an
            image repeated on demand is given one by its config instead).
        self_paced: ``True`` when ``read()`` already waits for the next frame
            (a camera, a network track). ``False`` means ``read()`` returns
            at once and the runtime paces the source to ``frame_rate`` in live
            mode, or reads it as fast as the graph accepts in offline mode.
        frame_count: frames in the stream when known (files), else ``None``.
    """

    width: int
    height: int
    frame_rate: Fraction | None
    self_paced: bool = False
    frame_count: int | None = None


@dataclass(frozen=True, slots=True)
class SourceFrame:
    """One picture from a source; the runtime wraps it into a `Frame`.

    ``pts``/``time_base`` are the source's own timeline when it has one.
    ``capture_ns`` is set by sources that know when the picture was taken
    (a camera thread); otherwise the runtime stamps the read time.
    ``work_ns`` is ``(start, end)``, on the same clock, of what the source did
    to the picture after capture (decoding, converting) when that is real
    work done per frame; the runtime keeps it as the frame's ``source_work``,
    so a frame's latency shows it apart from waiting (`pipeline.legs`).
    """

    image: Image
    pts: int | None = None
    time_base: Fraction | None = None
    capture_ns: int | None = None
    work_ns: tuple[int, int] | None = None


@runtime_checkable
class Source(Protocol):
    """A producer of pictures.

    ``open()`` is called once in a worker thread and returns the stream's
    `SourceInfo` (raise there, with a message that says what to do, for a
    missing file or a busy camera). ``read()`` returns the next picture or
    ``None`` at the end of the stream. ``close()`` is called once, always.
    """

    name: str

    def open(self) -> SourceInfo: ...

    def read(self) -> SourceFrame | None: ...

    def close(self) -> None: ...


def stage_names(stages: Iterable[Stage]) -> list[str]:
    return [s.name for s in stages]


def as_fraction(rate: float | Fraction | int) -> Fraction:
    """A frame rate as an exact fraction (29.97 -> 30000/1001 style)."""
    if isinstance(rate, Fraction):
        return rate
    return Fraction(rate).limit_denominator(1001)
