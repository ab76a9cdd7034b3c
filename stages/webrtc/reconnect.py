"""What `vicocam client` needs to outlive a lost session: when to call it lost, when to retry.

A server that dies sends nothing: no hang-up, no closed connection (ICE
notices only after ~30 s). A session's control channel pushes stats every
second (`stages.webrtc.control_channel`), so a peer that hears nothing for a
few seconds, neither a message nor a returned frame, takes the session as
lost (`Liveness`) and calls again after `backoff_s`, or after the server's
``Retry-After`` when it said it is full.

Across calls the local pipelines keep running: `CallSink` hands the sent
frames to whichever call is up (and drops them between calls), and
`PtsBridge` keeps the returned frames' timestamps growing across calls, so a
file or virtual camera behind them sees one stream with a gap, not a clock
that jumps back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

from av import VideoFrame

from pipeline.frame import Frame
from pipeline.stage import StageBase
from stages.webrtc.tracks import TrackSink

RETRY_FIRST_S = 0.25
RETRY_MAX_S = 4.0


def backoff_s(failures: int) -> float:
    """How long to wait before the next try after ``failures`` failed tries in a row.

    ``0`` right after a call that worked (a replica died: call again at once),
    then 0.25, 0.5, 1, 2, 4, 4 ... seconds.
    """
    if failures <= 0:
        return 0.0
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1))


def retry_after_s(header: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (``None``: absent, or a date we do not read)."""
    try:
        seconds = float(header) if header is not None else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 or seconds != seconds else seconds


class Liveness:
    """Whether a call still shows signs of life: control messages and returned frames.

    Clocks start at `start` (the answer). Lost when no returned frame came
    within ``connect_timeout_s`` of it, or when nothing at all (message or
    frame) came for ``silence_s`` after the first sign.
    """

    def __init__(self, connect_timeout_s: float, silence_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.silence_s = silence_s
        self._clock = clock
        self._started: float | None = None
        self._last: float | None = None
        self._video = False

    def start(self) -> None:
        self._started = self._clock()

    def beat(self) -> None:
        """A control message came."""
        self._last = self._clock()

    def frame(self) -> None:
        """A returned frame came."""
        self._video = True
        self._last = self._clock()

    def lost(self) -> str | None:
        """Why the call is lost now, or ``None`` while it lives (or has not started)."""
        if self._started is None:
            return None
        now = self._clock()
        if self._last is not None and now - self._last > self.silence_s:
            return f"nothing from the server for {self.silence_s:g} s"
        if not self._video and now - self._started > self.connect_timeout_s:
            return f"no video within {self.connect_timeout_s:g} s"
        return None


class CallSink(StageBase):
    """The sending pipeline's last stage: frames go to the call that is up, else are dropped.

    ``current`` is swapped on the event loop as calls come and go (one
    reference assignment, read once per frame in the stage's worker); a frame
    with no call up is dropped (counted as filtered by the runtime).
    """

    name = "webrtc_out"
    blocking = True  # the yuv420p conversion of `TrackSink`

    def __init__(self) -> None:
        self.current: TrackSink | None = None

    def process(self, frame: Frame) -> Frame | None:
        sink = self.current
        return None if sink is None else sink.process(frame)


class PtsBridge:
    """Keeps returned frames' pts growing across calls.

    Each call's video starts its own clock; `next_call` marks a new call, and
    its frames are shifted to follow the last frame of the previous call by
    the wall time between them.
    """

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock_ns = clock_ns
        self._offset = 0
        self._last: tuple[int, int] | None = None  # (pts, when) of the last frame
        self._new_call = True

    def next_call(self) -> None:
        self._new_call = True

    def rebase(self, frame: VideoFrame) -> VideoFrame:
        if frame.pts is None or not frame.time_base:
            return frame
        now = self._clock_ns()
        if self._new_call:
            self._new_call = False
            self._offset = 0 if self._last is None else self._follow(frame, now)
        frame.pts += self._offset
        self._last = (frame.pts, now)
        return frame

    def _follow(self, frame: VideoFrame, now_ns: int) -> int:
        time_base = frame.time_base
        assert self._last is not None and frame.pts is not None and time_base is not None
        last_pts, last_ns = self._last
        gap = round(Fraction(now_ns - last_ns, 10**9) / Fraction(time_base))
        return last_pts + max(1, gap) - frame.pts
