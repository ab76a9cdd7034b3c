"""How many frames the head lets into the graph at once: as many as pay.

Little's law ties three numbers of a running graph together: frames in flight
= throughput x latency. Once the bottleneck stage is busy all the time, or the
cores are taken by other programs, one more frame in flight buys no throughput
and, by that law, only adds latency: the extra frame waits in an edge or
shares a core with the frame ahead. `InFlightController` keeps the head's
limit at the smallest value that holds the throughput; `FlowLimiter` keeps
owning the tokens and the head's drops and takes its limit from here.

Every ``window`` frames delivered *and admitted under the current limit* (the
frames already in flight at a change ran under the old one), it measures:

* **waiting**: the median over frames of latency / service, where latency is
  admission to delivery and service the sum of the frame's own stage times.
  1.0 means the frame never waited between stages; queueing is the rest.
  A small per-frame allowance absorbs the thread hand-offs, which cost about
  the same at any limit.
* **binding**: whether the head refused a frame because the limit was
  reached. A frame that replaces one still waiting at the head is not a
  refusal: the first stage is busy, and a further token would not help.
* **throughput**: deliveries per second over the window.
* **service**: the median service time, to notice that conditions changed.

From these it makes *probes*:

* frames wait (ratio above ``wait_high``), or the limit has not yet won
  against a lower one (at the start, after a kept cut, after the conditions
  changed): try half as many frames (at least 1);
* the limit binds (the head refuses frames) and frames do not wait (ratio
  below ``wait_low``), or no cut may be tried (at 1, or cuts held off): try
  one more. Beside busy programs frames wait at every limit (each hand-off
  between threads waits for a core), so a limit that binds must be able to
  rise while it waits, or a cut kept on a noisy window is never undone: 6 CPU
  burners beside the graph kept the limit at 1-2 and lost up to 45 % of the
  fixed limit's frame rate that way.

A probe is judged on the first full window at the new limit against the window
just before it. The higher of the two limits *pays* when it delivers more than
``min_gain`` more throughput and its *power* (throughput / latency,
Kleinrock's measure of a queue's operating point) is not lower: the extra
frames must buy frame rate, and latency may grow no faster than frame rate.
Throughput alone would keep a frame that buys a tenth more frame rate for half
again the latency; latency/service alone misses frames that wait inside their
stages because they share the cores with each other or with other programs
(their service time grows instead). Frame rate comes first, though: when the
lower limit delivers less than ``1 - max_loss`` of the higher one's, the
higher pays whatever its power. Beside busy programs one frame in flight
delivered about 60 % of the frame rate of three at half their latency, a
better power, and that cut stayed. A raise stays only if it pays; a cut is
undone only if the limit it left paid: ties go to the lower limit.

Cuts halve rather than step because what a limit is worth is not monotone in
it (a higher limit keeps a fresher frame at the head of drop-oldest edges), so
stepping down one at a time can stop at a local optimum above 1; once a
halving cut from a limit is undone, cuts from it try one frame fewer, so the
levels in between are not skipped and a lost halving is not paid for again.
Raises step by one so the first level that stops paying is found.

Hysteresis: a verdict against a direction holds that direction off for 1, 2,
4... windows (up to ``max_backoff``), so a level that pays despite some
waiting is not re-tested every other window. A cut that lost more than
``max_loss`` of the frame rate is a clear verdict: cuts to that level are held
off for ``max_backoff`` windows at once (each such probe costs a window at the
lower frame rate; beside CPU burners frames wait at every level, and cuts to
one frame in flight were retried every one to three seconds), and each further
clear loss at that level doubles its hold, up to ``max_loss_hold`` windows
(with a fixed hold of 16 windows of 15 frames, a 30 fps call beside busy
programs paid such a probe every 8 s for as long as it lasted). When the
median service time moves by ``service_shift`` either way (a stage slowed
down or recovered, a neighbour took a core) and stays moved for
``shift_windows`` windows in a row, the holds end, the back-offs reset and
the level counts as unjudged again; a window beyond the band is not used as
a probe's baseline (it may straddle a change). The limit starts at the cap
(the fixed limiter's behaviour, so a run never starts short of overlap)
unless told otherwise, stays within 1..cap, and no real time is read here:
every time comes from the caller.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

UP, DOWN = 1, -1
"""Probe directions: a raise (one frame more) and a cut (fewer frames)."""


@dataclass(frozen=True, slots=True)
class InFlightConfig:
    """Tuning of the adaptive head limit (the defaults suit a 30 fps camera).

    Attributes:
        window: delivered frames per verdict (15: half a second at 30 fps,
            enough to average the jitter of single frames).
        wait_high: median latency/service above which frames are said to
            wait, and a cut is tried.
        wait_low: median latency/service below which frames do not wait; a
            raise is only tried below it (the gap to ``wait_high`` is the
            hysteresis band where nothing is tried).
        min_gain: the fraction of throughput that more frames in flight must
            add to pay (beside not lowering throughput / latency). 0.04: a
            cut that costs more than 4 % of the frame rate is undone (at 0.1 a
            cut that cost 9 % stayed; beside CPU burners the adaptive limit
            kept 81-90 % of the fixed limit's frame rate).
        max_loss: the fraction of the higher limit's throughput beyond which
            a lower limit loses whatever its latency (power no longer
            decides).
        service_shift: factor by which the median service time must move
            (either way) for the conditions to count as changed. 1.5: beside
            busy programs the median of 15 frames' service moves by a
            quarter from one window to the next, and every such move
            restarted the probes, each costing frames.
        shift_windows: windows in a row the median service time must stay
            moved for the conditions to count as changed. 3: beside 6 CPU
            burners single windows moved by half and back, and each such
            window restarted the probes at a frame in flight (half the frame
            rate for a window, every one to three seconds).
        allowance_s: per-frame time spent in hand-offs between threads, not
            counted as waiting.
        max_backoff: most windows a direction is held off after a verdict
            against it, and the hold of a level's first clear loss.
        max_loss_hold: most windows cuts to a level are held off after
            repeated clear losses there (each doubles the hold from
            ``max_backoff``). 128: about a minute at 30 fps; a change of
            conditions (``service_shift``) ends every hold at once.
    """

    window: int = 15
    wait_high: float = 1.25
    wait_low: float = 1.1
    min_gain: float = 0.04
    max_loss: float = 0.05
    service_shift: float = 1.5
    shift_windows: int = 3
    allowance_s: float = 0.001
    max_backoff: int = 16
    max_loss_hold: int = 128

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("window must be >= 2 (throughput needs two deliveries)")
        if not 1.0 <= self.wait_low <= self.wait_high:
            raise ValueError("need 1 <= wait_low <= wait_high")
        if not 0 <= self.max_loss < 1:
            raise ValueError("need 0 <= max_loss < 1")
        if self.min_gain < 0 or self.service_shift <= 1.0 or self.max_backoff < 1:
            raise ValueError("need min_gain >= 0, service_shift > 1, max_backoff >= 1")
        if self.shift_windows < 1:
            raise ValueError("shift_windows must be >= 1")
        if self.max_loss_hold < self.max_backoff:
            raise ValueError("need max_loss_hold >= max_backoff")


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What one window of delivered frames showed (see the module docstring)."""

    throughput: float
    """Deliveries per second (``inf`` when the window took no time)."""
    latency_s: float
    """Median admission-to-delivery time."""
    waiting: float
    """Median latency/service; 1.0 = no frame waited."""
    service_s: float
    """Median of the frames' summed stage times."""
    binding: bool
    """The head refused a frame at the limit during the window."""

    @property
    def power(self) -> float:
        """Throughput / latency: frame rate per unit of delay."""
        return self.throughput / max(self.latency_s, 1e-9)

    def pays_over(self, lower: WindowStats, gain: float, max_loss: float) -> bool:
        """Whether this window's (higher) limit paid over ``lower``'s (module docstring)."""
        if lower.throughput < self.throughput * (1 - max_loss):
            return True
        more = self.throughput > lower.throughput * (1 + gain)
        return more and self.power >= lower.power


@dataclass(frozen=True, slots=True)
class _Probe:
    direction: int
    limit_before: int
    before: WindowStats


class InFlightController:
    """Owns the current in-flight limit (1..cap) and moves it by measurement.

    Feed it every delivered frame with `observe` and every head refusal with
    `note_refused`; read `limit` after each call. Times are seconds from the
    caller's clock (any origin), never read here.
    """

    def __init__(self, cap: int, config: InFlightConfig | None = None,
                 *, start: int | None = None) -> None:
        if cap < 1:
            raise ValueError(f"the in-flight cap must be >= 1, got {cap}")
        self.config = config or InFlightConfig()
        self.cap = cap
        self._limit = cap if start is None else min(max(start, 1), cap)
        self._since_s = -math.inf  # frames admitted before this ran under an older limit
        self._frames: list[tuple[float, float, float]] = []
        self._refused = False
        self._probe: _Probe | None = None
        self._judged = False  # the limit has won against a lower one
        self._step = False  # a halving cut from this limit lost: cut by one only
        self._reference_s: float | None = None  # service time when last judged
        self._moved = 0  # windows in a row whose service lay beyond the band
        self._hold = {UP: 0, DOWN: 0}
        self._backoff = {UP: 1, DOWN: 1}
        self._cut_hold: dict[int, int] = {}  # per level: windows cuts to it are held off
        self._losses: dict[int, int] = {}  # per level: clear losses since conditions changed

    @property
    def limit(self) -> int:
        """Frames the head may hold in flight now."""
        return self._limit

    @property
    def binding(self) -> bool:
        """Whether the head refused a frame at the limit in the current window."""
        return self._refused

    def note_refused(self) -> None:
        """The head refused a frame because the limit was reached."""
        self._refused = True

    def observe(self, latency_s: float, service_s: float, delivered_at_s: float) -> None:
        """One delivered frame: admission-to-delivery time, summed stage times, delivery time."""
        if delivered_at_s - latency_s < self._since_s:
            return
        self._frames.append((latency_s, service_s, delivered_at_s))
        if len(self._frames) >= self.config.window:
            stats = self._stats()
            self._frames, self._refused = [], False
            self._judge(stats, delivered_at_s)

    def _stats(self) -> WindowStats:
        latencies, services, times = zip(*self._frames, strict=True)
        span = times[-1] - times[0]
        allowance = self.config.allowance_s
        return WindowStats(
            throughput=(len(times) - 1) / span if span > 0 else math.inf,
            latency_s=statistics.median(latencies),
            waiting=statistics.median(
                _wait_ratio(lat, svc, allowance)
                for lat, svc in zip(latencies, services, strict=True)
            ),
            service_s=statistics.median(services),
            binding=self._refused,
        )

    def _judge(self, stats: WindowStats, now_s: float) -> None:
        if self._probe is not None:
            self._conclude(self._probe, stats, now_s)
            return
        if not self._shifted(stats.service_s):
            self._consider(stats, now_s)
            self._count_down_holds()

    def _consider(self, stats: WindowStats, now_s: float) -> None:
        """Start a probe if the window asks for one and no back-off holds it."""
        cfg = self.config
        if (stats.waiting > cfg.wait_high or not self._judged) and self._may(DOWN):
            self._start(DOWN, stats, now_s)
        elif stats.binding and self._may(UP) and (stats.waiting < cfg.wait_low
                                                  or not self._may(DOWN)):
            self._start(UP, stats, now_s)

    def _shifted(self, service_s: float) -> bool:
        """Whether this window's service time lies far from the last verdict's (the
        window is then no baseline); `shift_windows` such windows in a row make
        that verdict stale."""
        reference, shift = self._reference_s, self.config.service_shift
        if reference is None or reference / shift <= service_s <= reference * shift:
            self._reference_s = service_s if reference is None else reference
            self._moved = 0
            return False
        self._moved += 1
        if self._moved < self.config.shift_windows:
            return True
        self._reference_s, self._moved = service_s, 0
        self._judged = self._step = False
        self._hold, self._backoff = {UP: 0, DOWN: 0}, {UP: 1, DOWN: 1}
        self._cut_hold, self._losses = {}, {}
        return True

    def _conclude(self, probe: _Probe, after: WindowStats, now_s: float) -> None:
        """Keep or undo the probe's step; hold off the direction that lost."""
        gain, loss = self.config.min_gain, self.config.max_loss
        if probe.direction == UP:
            kept = after.pays_over(probe.before, gain, loss)
        else:
            kept = not probe.before.pays_over(after, gain, loss)
        self._probe = None
        self._reference_s = (after if kept else probe.before).service_s
        if probe.direction == UP:
            self._after_raise(kept)
        else:
            self._after_cut(kept, probe.limit_before - self._limit)
            if after.throughput < probe.before.throughput * (1 - loss):
                self._hold_cuts_to(self._limit)
        if not kept:
            self._set(probe.limit_before, now_s)

    def _after_raise(self, kept: bool) -> None:
        """A kept raise won against the level below; an undone one holds raises off."""
        if kept:
            self._judged, self._step = True, False
        self._back_off(DOWN if kept else UP)

    def _after_cut(self, kept: bool, size: int) -> None:
        """A kept cut holds raises off; an undone one-frame cut holds cuts off."""
        if kept:
            self._judged = self._step = False
            self._back_off(UP)
        elif size > 1:
            self._step = True  # levels between were skipped: try one fewer next
        else:
            self._judged = True  # the halving stays lost: later cuts stay single
            self._back_off(DOWN)

    def _hold_cuts_to(self, level: int) -> None:
        """A clear loss at ``level``: hold cuts to it off, twice as long as after its
        last clear loss (from ``max_backoff`` up to ``max_loss_hold`` windows)."""
        losses = self._losses.get(level, 0)
        cfg = self.config
        self._cut_hold[level] = min(cfg.max_backoff * 2 ** losses, cfg.max_loss_hold)
        self._losses[level] = losses + 1

    def _may(self, direction: int) -> bool:
        within = self._limit < self.cap if direction == UP else self._limit > 1
        if direction == DOWN and self._cut_hold.get(self._target(DOWN), 0) > 0:
            return False
        return within and self._hold[direction] == 0

    def _start(self, direction: int, stats: WindowStats, now_s: float) -> None:
        self._probe = _Probe(direction, self._limit, stats)
        self._set(self._target(direction), now_s)

    def _target(self, direction: int) -> int:
        """One more for a raise; half (or one fewer after a lost halving) for a cut."""
        if direction == UP or self._step:
            return self._limit + direction
        return max(self._limit // 2, 1)

    def _set(self, limit: int, now_s: float) -> None:
        self._limit = limit
        self._since_s = now_s
        self._frames, self._refused = [], False

    def _back_off(self, direction: int) -> None:
        self._hold[direction] = self._backoff[direction]
        self._backoff[direction] = min(2 * self._backoff[direction], self.config.max_backoff)

    def _count_down_holds(self) -> None:
        for direction, left in self._hold.items():
            self._hold[direction] = max(left - 1, 0)
        self._cut_hold = {level: left - 1 for level, left in self._cut_hold.items() if left > 1}


def _wait_ratio(latency_s: float, service_s: float, allowance_s: float) -> float:
    """Latency over service, 1.0 when the frame waited no longer than the allowance."""
    excess = latency_s - service_s - allowance_s
    if excess <= 0:
        return 1.0
    return math.inf if service_s <= 0 else 1.0 + excess / service_s
