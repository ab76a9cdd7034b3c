"""Keep a virtual camera fed while no new frame comes: `KeepAlive`.

A virtual camera that stops receiving frames freezes, and Zoom, Meet or a
browser may drop it as a dead device. Frames stop whenever the source is
lost (a camera unplugged, a WebRTC peer stalled): the runtime then has
nothing to move, so the sink's ``process`` is not called. The keep-alive
fills those gaps from a thread of its own, because it must act exactly when
the runtime does not call the sink::

    frames flow            a live frame is sent at once (the keep-alive only notes it)
    silent > repeat_after  the last frame is sent again, every 1/fps
    silent > card_after    a "camera lost" card is sent instead, every 1/fps
    a frame comes again    it is sent at once; the fills stop

`Heartbeat` is the schedule alone (pure arithmetic on nanoseconds, tested
with made-up times); `KeepAlive` runs it in a thread and serialises every
send to the camera behind one lock, so a fill never overtakes a live frame
and frames reach the camera in order.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from pipeline.frame import Image

log = logging.getLogger(__name__)

CARD_BACKGROUND = (24, 24, 28)
"""RGB of the card's background (a dark grey, calmer than black or a test pattern)."""
CARD_INK = (235, 235, 235)
"""RGB of the card's text."""

_JOIN_TIMEOUT_S = 5.0  # a send blocked in a hung driver must not hang the run's stop


@dataclass(frozen=True, slots=True)
class KeepAliveConfig:
    """Settings of the virtual camera's keep-alive.

    Attributes:
        repeat_after_s: silence (no new frame) after which the last frame is
            sent again at the camera's rate; ``None`` = three frame intervals
            (100 ms at 30 fps): longer than the gaps of a live pipeline that
            drops frames, short enough that a loss costs the consumer only
            two or three frames.
        card_after_s: silence after which the card replaces the last frame.
        card_title, card_detail: the card's two lines of text.
    """

    repeat_after_s: float | None = None
    card_after_s: float = 1.0
    card_title: str = "camera lost"
    card_detail: str = "waiting for it to come back"

    def __post_init__(self) -> None:
        if self.repeat_after_s is not None and self.repeat_after_s <= 0:
            raise ValueError(f"repeat_after_s must be > 0, got {self.repeat_after_s}")
        if self.card_after_s <= 0:
            raise ValueError(f"card_after_s must be > 0, got {self.card_after_s}")

    def repeat_after_ns(self, fps: float) -> int:
        """``repeat_after_s`` in nanoseconds, with the default resolved for ``fps``."""
        seconds = self.repeat_after_s if self.repeat_after_s is not None else 3 / fps
        return round(seconds * 1e9)


class Fill(enum.Enum):
    """What the keep-alive sends in place of a frame that did not come."""

    REPEAT = "repeat"
    """The last frame sent, again."""
    CARD = "card"
    """The "camera lost" card."""


class Heartbeat:
    """The keep-alive's schedule, on nanoseconds of any monotonic clock.

    ``next_fill_ns`` is ``None`` until the first frame (there is nothing to
    repeat yet), then ``repeat_after_ns`` after the last frame, then one
    ``interval_ns`` after each fill. A fill taken late restarts the schedule
    from then instead of bursting to catch up (like the sink's fixed pacing).
    """

    def __init__(self, interval_ns: int, repeat_after_ns: int, card_after_ns: int) -> None:
        if min(interval_ns, repeat_after_ns, card_after_ns) <= 0:
            raise ValueError("heartbeat intervals must be > 0")
        self.interval_ns = interval_ns
        self.repeat_after_ns = repeat_after_ns
        self.card_after_ns = card_after_ns
        self.last_frame_ns: int | None = None
        self.next_fill_ns: int | None = None

    def frame_sent(self, now_ns: int) -> None:
        """A live frame went out at ``now_ns``: no fill until the next silence."""
        self.last_frame_ns = now_ns
        self.next_fill_ns = now_ns + self.repeat_after_ns

    def take_due(self, now_ns: int) -> Fill | None:
        """The fill due at ``now_ns`` (and schedule the next one), or ``None``."""
        due = self.next_fill_ns
        if due is None or self.last_frame_ns is None or now_ns < due:
            return None
        following = due + self.interval_ns
        self.next_fill_ns = following if following > now_ns else now_ns + self.interval_ns
        return Fill.CARD if now_ns - self.last_frame_ns >= self.card_after_ns else Fill.REPEAT

    def silent_s(self, now_ns: int) -> float:
        """Seconds since the last live frame (0 before the first)."""
        return 0.0 if self.last_frame_ns is None else (now_ns - self.last_frame_ns) / 1e9


class FrameSender(Protocol):
    """The part of ``pyvirtualcam.Camera`` the keep-alive uses."""

    def send(self, frame: Image) -> None: ...


class NowClock(Protocol):
    """Monotonic nanoseconds (the sink's `PaceClock` is one)."""

    def now_ns(self) -> int: ...


def render_card(width: int, height: int, title: str, detail: str) -> Image:
    """The ``(height, width, 3)`` RGB card: ``title`` large and ``detail`` small, centred."""
    card = np.full((height, width, 3), CARD_BACKGROUND, dtype=np.uint8)
    title_scale = _fitting_scale(title, width, 0.7, height / 480 * 1.6)
    _centred_text(card, title, round(height * 0.47), title_scale)
    _centred_text(card, detail, round(height * 0.60),
                  _fitting_scale(detail, width, 0.85, title_scale * 0.45))
    return card


def _fitting_scale(text: str, width: int, share: float, wanted: float) -> float:
    """A font scale no larger than ``wanted`` at which ``text`` spans at most
    ``share`` of ``width``."""
    (text_w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
    return max(0.2, min(wanted, share * width / max(text_w, 1)))


def _centred_text(card: Image, text: str, baseline_y: int, scale: float) -> None:
    thickness = max(1, round(scale * 1.5))
    (text_w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    origin = ((card.shape[1] - text_w) // 2, baseline_y)
    cv2.putText(card, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, CARD_INK, thickness,
                cv2.LINE_AA)


class KeepAlive:
    """Sends live frames to a camera and fills the silences (see the module docstring).

    ``send`` (the sink's thread) sends a live frame at once; the keep-alive
    thread sends the fills. Counters: ``repeats`` (last frame sent again),
    ``cards`` (card frames sent), ``outages`` (silences that reached the card).
    ``start``/``stop`` are called once each; ``stop`` joins the thread.
    """

    def __init__(self, camera: FrameSender, heartbeat: Heartbeat, card: Image,
                 clock: NowClock, name: str = "virtualcam") -> None:
        self.name = name
        self._camera = camera
        self._heartbeat = heartbeat
        self._card = card
        self._clock = clock
        self._cond = threading.Condition()
        self._last: Image | None = None
        self._stopping = False
        self._card_shown = False
        self._thread: threading.Thread | None = None
        self.repeats = 0
        self.cards = 0
        self.outages = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"vicocam-{self.name}-keepalive",
                                        daemon=True)
        self._thread.start()

    def send(self, image: Image) -> None:
        """Send a live frame now; it becomes the frame to repeat."""
        with self._cond:
            self._camera.send(image)
            first = self._last is None
            # A copy, after the send: the frame is already out, and an upstream
            # stage that reuses its buffer must not change what gets repeated.
            self._last = image.copy()
            now = self._clock.now_ns()
            silent_s = self._heartbeat.silent_s(now)
            self._heartbeat.frame_sent(now)
            if first:
                self._cond.notify()  # the thread waits without a deadline until then
            if self._card_shown:
                self._card_shown = False
                log.warning("%s: frames are back after %.1f s; live output resumed",
                            self.name, silent_s)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=_JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning("%s: the keep-alive thread is stuck in a send; leaving it",
                            self.name)

    def _run(self) -> None:
        try:
            with self._cond:
                while not self._stopping:
                    self._fill_if_due()
                    self._cond.wait(self._wait_s())
        except Exception:
            # The camera itself failed; the live path reports its own errors on
            # the next frame, so one message here is enough.
            log.exception("%s: the keep-alive stopped: sending a fill failed", self.name)

    def _wait_s(self) -> float | None:
        due = self._heartbeat.next_fill_ns
        if due is None:
            return None
        return max(0.0, (due - self._clock.now_ns()) / 1e9)

    def _fill_if_due(self) -> None:
        now = self._clock.now_ns()
        fill = self._heartbeat.take_due(now)
        if fill is None or self._last is None:
            return
        if fill is Fill.REPEAT:
            self._camera.send(self._last)
            self.repeats += 1
        else:
            self._send_card(now)

    def _send_card(self, now_ns: int) -> None:
        if not self._card_shown:
            self._card_shown = True
            self.outages += 1
            log.warning("%s: no new frame for %.1f s: the source is lost (camera unplugged or "
                        "peer stalled); sending a card until frames come back",
                        self.name, self._heartbeat.silent_s(now_ns))
        self._camera.send(self._card)
        self.cards += 1
