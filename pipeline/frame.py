"""The `Frame` envelope: one picture travelling through the stage graph.

A frame carries its identity (sequence number), its timing (monotonic capture
time, presentation timestamp and time base), the current picture, typed
per-stage results and a trace of the time each stage spent on it. End-to-end
latency is computed from the envelope alone, never from log lines.

Per-stage results are stored by *type*: a stage that finds a face stores a
`FaceBox`-like dataclass with `frame.put(box)`, a later stage reads it back
with `frame.get(FaceBox)`, typed. The graph validator uses the same types to
check, before the first frame, that every stage's needs are produced upstream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")

Image = npt.NDArray[np.uint8]
"""An image as an ``(H, W, 3)`` uint8 array in RGB order, C-contiguous."""

DEFAULT_TIME_BASE = Fraction(1, 90_000)
"""The RTP video clock; fine-grained enough for any frame rate."""


class MissingResultError(LookupError):
    """A stage asked for a result that no upstream stage produced."""


@dataclass(frozen=True, slots=True)
class StageTiming:
    """Time one stage spent on one frame, in monotonic nanoseconds."""

    stage: str
    start_ns: int
    end_ns: int

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(slots=True)
class Frame:
    """One frame and everything the graph learned about it.

    Attributes:
        seq: position in the source's stream, from 0, never reused. Gaps in
            ``seq`` downstream are frames dropped on the way.
        capture_ns: ``time.monotonic_ns()`` when the source obtained the
            picture (for a camera: when the capture thread got it).
        image: the current picture, ``(H, W, 3)`` uint8 RGB. Stages may
            replace it (a compositor writes the avatar here); sinks write it.
        pts: presentation timestamp in ``time_base`` units, or ``None`` when
            the source has no timeline (a single image).
        time_base: unit of ``pts``.
        trace: one `StageTiming` per stage that processed the frame, in order.
        admitted_ns: when the runtime admitted the frame at the head (took its
            in-flight token), on the runtime's clock; ``None`` before that.
            Admission to delivery minus the trace is the time spent waiting.
        source_work: the source's own work on the picture after capture (a
            network track's colour conversion), named after the source, when
            the source timed it (`pipeline.stage.SourceFrame.work_ns`);
            ``None`` otherwise. Not part of ``trace``: it happens before
            admission.
    """

    seq: int
    capture_ns: int
    image: Image
    pts: int | None = None
    time_base: Fraction = DEFAULT_TIME_BASE
    trace: list[StageTiming] = field(default_factory=list)
    admitted_ns: int | None = None
    source_work: StageTiming | None = None
    _results: dict[type, object] = field(default_factory=dict, repr=False)

    def put(self, result: object) -> None:
        """Store a typed result; a later ``put`` of the same type replaces it."""
        self._results[type(result)] = result

    def get(self, kind: type[T]) -> T:
        """Return the result of type ``kind``; raise if none was stored."""
        try:
            value = self._results[kind]
        except KeyError:
            raise MissingResultError(
                f"frame {self.seq} has no {kind.__name__} result; "
                "the stage that produces it did not run on this frame"
            ) from None
        assert isinstance(value, kind)  # guaranteed by put(); narrows for mypy
        return value

    def find(self, kind: type[T]) -> T | None:
        """Return the result of type ``kind``, or ``None`` if absent."""
        value = self._results.get(kind)
        return value if isinstance(value, kind) else None

    def has(self, kind: type) -> bool:
        return kind in self._results

    @property
    def result_types(self) -> frozenset[type]:
        return frozenset(self._results)

    @property
    def service_ns(self) -> int:
        """Time the stages spent on the frame so far (the sum of its trace)."""
        return sum(t.end_ns - t.start_ns for t in self.trace)

    @property
    def pts_seconds(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)

    def age_ms(self, now_ns: int | None = None) -> float:
        """Milliseconds since capture."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        return (now - self.capture_ns) / 1e6


def check_image(image: object, *, what: str = "image") -> Image:
    """Validate that ``image`` is an ``(H, W, 3)`` uint8 array; return it contiguous
    (C order, no negative strides: ready for ``torch.from_numpy``).

    Raises `ValueError` with a message that names the shape and dtype found,
    so a wrong frame fails loudly at the boundary instead of deep in a model.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} is empty: {image.shape}")
    if any(stride < 0 for stride in image.strides):
        # A flipped view of one row counts as C-contiguous, but torch refuses its stride.
        return image.copy()
    return np.ascontiguousarray(image)
