import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from pipeline.control import SettingsBox
from pipeline.frame import Frame, MissingResultError, StageTiming, check_image
from pipeline.metrics import Metrics, percentile
from tests.pipeline.helpers import FaceBoxStub, MotionStub


def test_typed_results_round_trip_and_missing_is_loud():
    frame = Frame(3, 0, np.zeros((2, 2, 3), np.uint8))
    frame.put(FaceBoxStub(5))
    assert frame.get(FaceBoxStub).x == 5
    assert frame.find(MotionStub) is None
    with pytest.raises(MissingResultError, match="frame 3 has no MotionStub"):
        frame.get(MotionStub)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 4), np.uint8), "shape"),
        (np.zeros((4, 4, 4), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_check_image_names_the_problem(image, message):
    with pytest.raises(ValueError, match=message):
        check_image(image)


@pytest.mark.parametrize("view", [lambda a: a[::-1], lambda a: a[:, ::-1], lambda a: a[::-2]])
def test_check_image_returns_what_torch_takes_even_for_flipped_single_rows(view):
    # Found by fuzzing: one flipped row counts as C-contiguous, with a negative stride.
    image = check_image(view(np.arange(24, dtype=np.uint8).reshape(1, 8, 3)))
    assert image.flags.c_contiguous and min(image.strides) > 0
    torch = pytest.importorskip("torch")
    torch.from_numpy(image)


def test_percentile_matches_numpy():
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert math.isnan(percentile([], 50))


def test_metrics_windows_and_strict_json():
    m = Metrics()
    for i in range(9):
        frame = Frame(i, i * 1_000_000, np.zeros((1, 1, 3), np.uint8))
        m.record_in(i * 1_000_000)
        m.record_out(frame, i * 1_000_000 + (i + 1) * 1_000_000)
    assert m.latency_window(0, 1 / 3)[0] == pytest.approx(1.0)
    assert max(m.latency_window(2 / 3, 1)) == pytest.approx(9.0)
    data = json.loads(m.to_json())  # no NaN in strict JSON
    assert data["frames_out"] == 9
    assert "e2e p50" in m.status_line()


def test_metrics_read_drops_from_their_owners():
    class Owner:
        drops = 0

    head, edge = Owner(), Owner()
    m = Metrics()
    assert m.drops == {} and m.frames_dropped == 0
    m.count_drops_of("->a", edge)
    m.count_drops_of("head", head)
    edge.drops, head.drops = 2, 3
    assert m.drops == {"->a": 2, "head": 3}  # registration order, current counts
    assert m.frames_dropped == 5
    assert m.to_dict()["drops"] == {"->a": 2, "head": 3}
    assert "dropped 5" in m.status_line()


def test_status_line_flags_a_silent_source():
    m = Metrics()
    assert "NO INPUT" not in m.status_line(now_ns=5_000_000_000)  # nothing read yet
    m.record_in(1_000_000_000)
    assert "NO INPUT" not in m.status_line(now_ns=1_900_000_000)
    assert m.status_line(now_ns=4_250_000_000).startswith("NO INPUT for 3.2 s | in ")
    assert "NO INPUT" not in m.status_line()  # no time given: no judgement


@dataclass(frozen=True)
class Knobs:
    strength: float = 1.0
    resets: int = 0


def test_settings_box_swaps_whole_objects_and_notifies():
    box = SettingsBox(Knobs())
    seen: list[Knobs] = []
    unsubscribe = box.subscribe(seen.append)
    snapshot = box.get()
    box.update(strength=0.5)
    box.update(resets=box.get().resets + 1)
    assert snapshot == Knobs()  # a reader's snapshot never changes under it
    assert box.get() == Knobs(0.5, 1)
    assert box.version == 2
    assert seen == [Knobs(0.5, 0), Knobs(0.5, 1)]
    unsubscribe()
    box.update(strength=2.0)
    assert len(seen) == 2
    with pytest.raises(TypeError):
        box.update(nonsense=1)


def test_frames_in_flight_are_averaged_over_time_and_limits_over_deliveries():
    m = Metrics()
    frame = Frame(0, 0, np.zeros((1, 1, 3), np.uint8))
    m.in_flight.record(0, 1, 3)
    m.in_flight.record(10, 2, 3)
    m.record_out(frame, 10)
    m.in_flight.record(30, 2, 1)  # the limit fell; two frames still in flight
    m.in_flight.record(40, 0, 1)
    m.record_out(frame, 40)
    m.record_out(frame, 40)
    # 1 frame for 10 ns, 2 for 30 ns: 70 frame-ns over 40 ns.
    assert m.in_flight_summary() == {
        "in_flight_mean": pytest.approx(1.75),
        "in_flight_limit_p50": 1,
        "in_flight_limit_last": 1,
    }
    data = m.to_dict()
    assert data["in_flight_mean"] == pytest.approx(1.75) and data["in_flight_limit_last"] == 1


def test_the_share_of_deliveries_under_each_limit_counts_the_last_ones_asked_for():
    m = Metrics()
    frame = Frame(0, 0, np.zeros((1, 1, 3), np.uint8))
    for limit in (3, 3, 3, 2, 2, 3, 2, 2):
        m.in_flight.record(0, 1, limit)
        m.record_out(frame, 0)
    assert m.in_flight.limit_share() == {1: 0.0, 2: 0.5, 3: 0.5}
    assert m.in_flight.limit_share(last=4) == {1: 0.0, 2: 0.75, 3: 0.25}
    assert m.in_flight.limit_share(last=100) == {1: 0.0, 2: 0.5, 3: 0.5}
    assert m.in_flight.limit_share(last=0) == {}


def test_in_flight_figures_of_an_empty_run_are_null_in_json():
    data = json.loads(Metrics().to_json())
    assert data["in_flight_mean"] is None
    assert data["in_flight_limit_p50"] is None
    assert data["in_flight_limit_last"] is None


def test_a_frame_knows_the_time_its_stages_took():
    frame = Frame(0, 0, np.zeros((1, 1, 3), np.uint8))
    assert frame.service_ns == 0 and frame.admitted_ns is None
    frame.trace += [StageTiming("a", 10, 15), StageTiming("b", 20, 27)]
    assert frame.service_ns == 12


def test_gap_counter_counts_gaps_over_its_threshold_on_a_scripted_series():
    from pipeline.metrics import GapCounter

    gaps = GapCounter(threshold_ms=100.0)
    ms = [0, 33, 66, 200, 233, 333.5, 333.5, 300, 500]  # a repeat and a step back: no gap
    for t in ms:
        gaps.note(int(t * 1e6))
    # 66 -> 200 (134 ms) and 333.5 -> 500 (166.5 ms); 233 -> 333.5 is 100.5 ms: a stall too.
    assert gaps.snapshot() == {"count": 3, "total_ms": 401.0}
    assert GapCounter().snapshot() == {"count": 0, "total_ms": 0.0}
