"""The adaptive in-flight limit against a simulated graph and scripted windows.

The plant (tests/pipeline/plant.py) runs in model time: no test sleeps or
reads a real clock. Figures are taken over the settled part of each run.
"""

import itertools
import random
import statistics

import pytest

from pipeline.in_flight import InFlightConfig, InFlightController
from tests.pipeline.plant import FixedLimit, Plant, constant, step

MS = 1e-3
LATENCY_FIRST = InFlightConfig(max_loss=0.5)
"""A user's trade: a lower limit may cost up to half the frame rate when its power is
higher. In the simulated graph the head waits for the camera's next frame after each
delivery, so one frame in flight costs a fifth of the frame rate or more; with the
default (5 %) the limit keeps that frame rate instead (`test_the_default_keeps_...`)."""


def _plant(costs_ms, fps, controller, cores=None):
    costs = [c if callable(c) else constant(c * MS) for c in costs_ms]
    plant = Plant(costs, fps, controller)
    if cores is not None:
        plant.cores = cores
    return plant


def _median_limit(plant, start, end):
    return statistics.median(plant.limits(start, end))


def _latency(plant, start, end):
    return statistics.median(d.latency for d in plant.between(start, end))


def test_saturated_bottleneck_settles_at_one_frame_without_losing_throughput():
    # 1 + 28 + 1 ms behind a 100 fps camera: the middle stage is saturated with
    # one frame in flight; more frames mostly wait in front of it.
    adaptive = _plant([1, 28, 1], 100, InFlightController(3, LATENCY_FIRST)).run(60)
    fixed = _plant([1, 28, 1], 100, FixedLimit(3)).run(60)
    assert fixed.waiting(20, 60) > 1.15  # the fixed limit makes frames wait
    assert adaptive.share_at(1, 20, 60) > 0.9
    assert adaptive.waiting(20, 60) == pytest.approx(1.0, abs=0.05)
    assert adaptive.throughput(20, 60) >= 0.9 * fixed.throughput(20, 60)
    assert _latency(adaptive, 20, 60) <= 0.85 * _latency(fixed, 20, 60)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_stage_times_do_not_make_the_limit_swing(seed):
    # The same saturated bottleneck with every stage time drawn from +-30 %.
    rng = random.Random(seed)

    def noisy(ms):
        return lambda _t: ms * MS * rng.uniform(0.7, 1.3)

    plant = _plant([noisy(2), noisy(30)], 60, InFlightController(3, LATENCY_FIRST)).run(60)
    limits = plant.limits(10, 60)
    changes = sum(a != b for a, b in itertools.pairwise(limits))
    assert statistics.median(limits) == 1 and plant.share_at(1, 10, 60) > 0.75
    assert changes <= len(limits) / 15 / 3  # at most one change every third window


def test_a_stage_that_slows_down_lowers_the_limit_and_its_recovery_raises_it():
    slow_b = step(20 * MS, 300 * MS, at=30, back_at=90)
    plant = _plant([20, slow_b], 60, InFlightController(3, LATENCY_FIRST),
                   cores=lambda _t: 2).run(150)
    assert _median_limit(plant, 10, 30) >= 2
    assert _median_limit(plant, 45, 90) == 1
    assert plant.waiting(45, 90) == pytest.approx(1.0, abs=0.05)
    assert _median_limit(plant, 110, 150) >= 2


def test_a_neighbour_taking_a_core_lowers_the_limit_until_it_leaves():
    # With one core left the two stages' frames share it: overlap buys nothing
    # and the waiting hides inside the stage times; latency must come back to
    # the service time of one frame on its own (40 ms).
    cores = step(2, 1, at=30, back_at=90)
    plant = _plant([20, 20], 60, InFlightController(3, LATENCY_FIRST), cores=cores).run(150)
    assert _median_limit(plant, 10, 30) >= 2
    assert _median_limit(plant, 45, 90) == 1
    assert _latency(plant, 45, 90) == pytest.approx(40 * MS, rel=0.05)
    assert _median_limit(plant, 110, 150) >= 2


def test_overlap_that_pays_raises_the_limit_and_the_throughput():
    # Two equal stages on free cores, a camera faster than one frame's 40 ms.
    adaptive = _plant([20, 20], 60, InFlightController(4, start=1), cores=lambda _t: 2).run(40)
    one = _plant([20, 20], 60, FixedLimit(1), cores=lambda _t: 2).run(40)
    assert _median_limit(adaptive, 10, 40) >= 2
    assert adaptive.throughput(10, 40) >= 1.5 * one.throughput(10, 40)
    assert adaptive.waiting(10, 40) < 1.25


class Script:
    """Feeds a controller whole windows of identical frames on a fake clock.

    Each window starts one latency after the last: its frames were admitted
    after any change the previous window made, so all of them count.
    """

    def __init__(self, controller: InFlightController) -> None:
        self.controller = controller
        self.now = 0.0

    def window(self, fps: float, latency_s: float, service_s: float, *, refused: bool) -> int:
        if refused:
            self.controller.note_refused()
        self.now += latency_s
        for _ in range(self.controller.config.window):
            self.now += 1.0 / fps
            self.controller.observe(latency_s, service_s, self.now)
        return self.controller.limit


def test_a_raise_that_does_not_pay_is_undone_and_held_off():
    script = Script(InFlightController(3, start=1))
    assert script.window(20, 0.040, 0.040, refused=True) == 2  # binding, no waiting: raise
    # Same throughput, frames now share the cores (service and latency grow).
    assert script.window(20, 0.060, 0.060, refused=True) == 1  # undone
    assert script.window(20, 0.040, 0.040, refused=True) == 1  # held off one window
    assert script.window(20, 0.040, 0.040, refused=True) == 2  # probed again
    assert script.window(20, 0.060, 0.060, refused=True) == 1  # undone again
    limits = [script.window(20, 0.040, 0.040, refused=True) for _ in range(3)]
    assert limits == [1, 1, 2]  # the hold doubled


def test_a_raise_that_pays_is_kept():
    script = Script(InFlightController(3, start=1))
    assert script.window(20, 0.040, 0.040, refused=True) == 2
    assert script.window(40, 0.042, 0.040, refused=True) == 2  # twice the frames, same latency


def test_waiting_frames_cut_the_limit_and_a_cut_that_loses_is_undone():
    script = Script(InFlightController(4, start=4))
    assert script.window(40, 0.080, 0.040, refused=False) == 2  # frames wait: halve
    assert script.window(40, 0.080, 0.040, refused=False) == 2  # as fast: the cut stays
    assert script.window(40, 0.080, 0.040, refused=False) == 1  # still waiting: cut again
    assert script.window(38.3, 0.080, 0.040, refused=True) == 2  # power fell: undone
    assert script.window(40, 0.080, 0.040, refused=False) == 2  # cuts held off one window
    assert script.window(40, 0.080, 0.040, refused=False) == 1  # then tried again


def test_frame_rate_comes_first_unless_the_user_trades_it_for_latency():
    # One frame in flight: a fifth fewer frames at half the latency (a better power).
    for config, kept in ((InFlightConfig(), False), (LATENCY_FIRST, True)):
        script = Script(InFlightController(2, config))
        assert script.window(30, 0.060, 0.040, refused=False) == 1  # unjudged: try half
        assert script.window(24, 0.030, 0.030, refused=True) == (1 if kept else 2)


def test_a_cut_that_clearly_loses_is_not_retried_for_the_longest_hold():
    # Beside busy programs frames wait at every limit; one in flight halves the frame rate.
    config = InFlightConfig()
    script = Script(InFlightController(2, config))
    assert script.window(30, 0.050, 0.035, refused=False) == 1  # waiting: try half
    assert script.window(15, 0.040, 0.035, refused=True) == 2  # lost half the frames
    held = [script.window(30, 0.050, 0.035, refused=False) for _ in range(config.max_backoff)]
    assert held == [2] * config.max_backoff  # frames still wait, yet no cut is tried
    assert script.window(30, 0.050, 0.035, refused=False) == 1  # then it is, once


def test_each_further_clear_loss_at_a_level_doubles_its_hold_until_conditions_change():
    config = InFlightConfig(max_backoff=4, max_loss_hold=8)
    script = Script(InFlightController(2, config))

    def held_for() -> int:
        """Windows at 2 after a cut to 1 lost half the frames, until a cut is tried again."""
        assert script.window(15, 0.040, 0.035, refused=True) == 2  # a clear loss
        windows = 0
        while script.window(30, 0.050, 0.035, refused=False) == 2:
            windows += 1
        return windows

    assert script.window(30, 0.050, 0.035, refused=False) == 1  # waiting: try half
    assert [held_for() for _ in range(3)] == [4, 8, 8]  # doubled, up to max_loss_hold
    # The service time doubles for good: the holds end at once.
    assert script.window(15, 0.040, 0.035, refused=True) == 2
    limits = [script.window(30, 0.100, 0.070, refused=False) for _ in range(4)]
    assert limits == [2, 2, 2, 1]  # after shift_windows (3) windows: unjudged, cut
    assert script.window(15, 0.080, 0.070, refused=True) == 2  # loses clearly again
    hold = 0
    while script.window(30, 0.100, 0.070, refused=False) == 2:
        hold += 1
    assert hold == 4  # back to the first hold


def test_a_bad_loss_hold_is_refused():
    with pytest.raises(ValueError, match="max_loss_hold"):
        InFlightConfig(max_backoff=16, max_loss_hold=8)


def test_one_slow_window_does_not_restart_the_probes():
    script = Script(InFlightController(2, InFlightConfig(shift_windows=3)))
    assert script.window(30, 0.050, 0.035, refused=False) == 1
    assert script.window(15, 0.040, 0.035, refused=True) == 2  # cuts to 1 held off
    # Service doubles for two windows, then comes back: the hold stands.
    assert [script.window(30, 0.100, 0.070, refused=False) for _ in range(2)] == [2, 2]
    assert script.window(30, 0.050, 0.035, refused=False) == 2
    assert script.window(30, 0.050, 0.035, refused=False) == 2
    # Doubled for three windows in a row: conditions changed, the probes restart.
    assert [script.window(30, 0.100, 0.070, refused=False) for _ in range(3)] == [2, 2, 2]
    assert script.window(30, 0.100, 0.070, refused=False) == 1  # unjudged again: cut


def test_a_cut_that_costs_a_few_percent_of_the_frame_rate_is_undone():
    # Beside busy programs: 3 in flight keep up with the camera at little waiting;
    # 1 in flight lets one frame in fifteen miss its slot, for hardly lower latency.
    script = Script(InFlightController(3))
    assert script.window(30, 0.025, 0.021, refused=False) == 1  # unjudged: try half
    assert script.window(28, 0.024, 0.022, refused=True) == 3  # 7 % fewer frames: undone
    assert script.window(30, 0.025, 0.021, refused=False) == 2  # then one frame fewer
    assert script.window(28, 0.024, 0.022, refused=True) == 3  # loses too: undone
    assert script.window(30, 0.025, 0.021, refused=False) == 3  # and cuts are held off


def test_a_limit_that_binds_rises_even_while_frames_wait():
    # Beside busy programs every hand-off waits for a core, so frames wait at
    # any limit; at 1 the head refuses frames and a second one buys them back.
    script = Script(InFlightController(3, start=1))
    assert script.window(20, 0.060, 0.042, refused=True) == 2  # waits, binds, floor: raise
    assert script.window(29, 0.062, 0.044, refused=True) == 2  # 45 % more frames: kept


def test_the_cap_and_the_floor_hold():
    # Four equal stages on free cores would use four frames; the cap is 2.
    capped = InFlightController(2, start=1)
    plant = _plant([10, 10, 10, 10], 120, capped, cores=lambda _t: 4).run(30)
    assert max(plant.limits(0, 30)) <= 2 and capped.limit <= 2
    assert _median_limit(plant, 10, 30) == 2
    # A single slow stage: frames wait at any limit; the limit stops at 1.
    floored = InFlightController(3)
    plant = _plant([50], 100, floored).run(30)
    assert min(plant.limits(0, 30)) >= 1 and floored.limit >= 1
    assert _median_limit(plant, 10, 30) == 1


def test_start_is_clamped_and_bad_settings_are_refused():
    assert InFlightController(3, start=9).limit == 3
    assert InFlightController(3, start=0).limit == 1
    assert InFlightController(2).limit == 2  # the fixed limiter's behaviour at first
    with pytest.raises(ValueError, match="cap must be >= 1"):
        InFlightController(0)
    with pytest.raises(ValueError, match="window"):
        InFlightConfig(window=1)
    with pytest.raises(ValueError, match="wait_low"):
        InFlightConfig(wait_low=1.5, wait_high=1.2)
    with pytest.raises(ValueError, match="max_loss"):
        InFlightConfig(max_loss=1.0)
    with pytest.raises(ValueError, match="shift_windows"):
        InFlightConfig(shift_windows=0)


def test_frames_admitted_before_a_change_do_not_count_for_the_new_limit():
    controller = InFlightController(3, InFlightConfig(window=2), start=1)
    controller.note_refused()
    controller.observe(0.04, 0.04, 1.00)
    controller.observe(0.04, 0.04, 1.05)
    assert controller.limit == 2  # raised at t = 1.05
    controller.observe(0.04, 0.04, 1.06)  # admitted at 1.02, under the old limit
    controller.observe(0.04, 0.04, 1.07)
    assert controller.limit == 2  # one frame counted, no verdict yet
