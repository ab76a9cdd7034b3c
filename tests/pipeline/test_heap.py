"""A long-running process's Python heap (`pipeline.heap`)."""

from __future__ import annotations

import gc
import weakref

import pytest

from pipeline.heap import GcPauses, frozen_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture(autouse=True)
def thawed():
    if gc.get_freeze_count():
        pytest.skip("the test process's heap is frozen already")
    yield
    assert gc.get_freeze_count() == 0


def test_garbage_is_collected_before_the_freeze_and_what_lives_is_frozen():
    kept, _ = cycle()
    dropped, dead = cycle()
    del dropped
    with frozen_heap() as frozen:
        assert dead() is None  # the collection before the freeze freed it
        assert frozen > 0 and gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # out of the collector's walk
    assert any(o is kept for o in gc.get_objects())  # thawed on the way out


def test_a_frozen_heap_inside_another_leaves_the_outer_one_frozen():
    kept, _ = cycle()
    with frozen_heap():
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0  # the inner one did not thaw the outer's objects
        assert not any(o is kept for o in gc.get_objects())
    assert gc.get_freeze_count() == 0


def test_cycles_made_after_the_freeze_are_still_collected():
    with frozen_heap():
        made, dead = cycle()
        del made
        gc.collect()
        assert dead() is None


def test_pauses_are_timed_per_generation_between_start_and_stop():
    ticks = iter([1_000_000, 4_500_000, 10_000_000, 10_250_000])
    pauses = GcPauses(clock_ns=lambda: next(ticks))
    pauses("start", {"generation": 2})
    pauses("stop", {"generation": 2, "collected": 0})
    pauses("start", {"generation": 0})
    pauses("stop", {"generation": 0, "collected": 3})
    figures = pauses.figures()
    assert figures["gen2"] == {"collections": 1, "max_ms": 3.5, "total_ms": 3.5}
    assert figures["gen0"] == {"collections": 1, "max_ms": 0.25, "total_ms": 0.2}
    assert figures["gen1"] == {"collections": 0, "max_ms": None, "total_ms": 0}


def test_recording_hooks_the_collector_only_inside_the_block():
    pauses = GcPauses()
    with pauses.recording():
        gc.collect()
    gc.collect()
    assert pauses.figures()["gen2"]["collections"] == 1
    assert pauses not in gc.callbacks
