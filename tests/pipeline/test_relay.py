"""The relay between two worker segments, with real threads and no event loop."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.frame import Frame
from pipeline.relay import Relay


def _frame(seq: int) -> Frame:
    return Frame(seq, 0, np.zeros((1, 1, 3), np.uint8))


class Segment:
    """Runs frames in the executor's thread; each waits until the test lets it go."""

    def __init__(self) -> None:
        self.ran: list[int] = []
        self.threads: set[str] = set()
        self.entered = threading.Semaphore(0)
        self.go = threading.Semaphore(0)
        self.done = threading.Event()

    def __call__(self, frame: Frame) -> None:
        self.threads.add(threading.current_thread().name)
        self.entered.release()
        assert self.go.acquire(timeout=10)
        self.ran.append(frame.seq)
        if frame.seq == 99:
            self.done.set()


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(1, thread_name_prefix="segment")
    yield pool
    pool.shutdown(wait=True)


def test_a_busy_segment_keeps_only_the_newest_frame_waiting(executor):
    segment, dropped = Segment(), []
    relay = Relay("->b", executor, segment, on_drop=lambda f: dropped.append(f.seq))
    relay.put_nowait(_frame(0))
    assert segment.entered.acquire(timeout=10)  # frame 0 runs; the segment is busy
    for seq in (1, 2, 3):
        relay.put_nowait(_frame(seq))
    assert relay.qsize() == 1 and relay.drops == 2 and dropped == [1, 2]
    segment.go.release()
    assert segment.entered.acquire(timeout=10)  # the same run took frame 3 next
    relay.put_nowait(_frame(99))
    segment.go.release()
    segment.go.release()
    assert segment.done.wait(timeout=10)
    assert segment.ran == [0, 3, 99]
    assert segment.threads == {next(iter(segment.threads))}  # one thread, the executor's
    assert next(iter(segment.threads)).startswith("segment")


def test_after_close_nothing_more_runs_and_every_frame_is_dropped_once(executor):
    segment, dropped = Segment(), []
    relay = Relay("->b", executor, segment, on_drop=lambda f: dropped.append(f.seq))
    relay.put_nowait(_frame(0))
    assert segment.entered.acquire(timeout=10)
    relay.put_nowait(_frame(1))
    relay.close()  # frame 1 was waiting: dropped
    relay.put_nowait(_frame(2))
    segment.go.release()
    executor.submit(lambda: None).result(timeout=10)  # the run has returned
    assert segment.ran == [0] and dropped == [1, 2] and relay.drops == 2


def test_frames_from_many_threads_each_run_or_drop_exactly_once(executor):
    ran, dropped, lock = [], [], threading.Lock()

    def run(frame):
        with lock:
            ran.append(frame.seq)

    relay = Relay("->b", executor, run, on_drop=lambda f: dropped.append(f.seq))

    def feed(start):
        for seq in range(start, start + 500):
            relay.put_nowait(_frame(seq))

    feeders = [threading.Thread(target=feed, args=(k * 1000,)) for k in range(4)]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    executor.submit(lambda: None).result(timeout=10)
    seen = ran + dropped
    assert len(seen) == len(set(seen)) == 2000  # nothing run twice, nothing lost
    assert relay.drops == len(dropped) and relay.qsize() == 0


def test_a_run_that_raises_does_not_wedge_the_relay(executor):
    calls = []

    def run(frame):
        calls.append(frame.seq)
        if frame.seq == 0:
            raise RuntimeError("boom")

    relay = Relay("->b", executor, run, on_drop=lambda f: None)
    relay.put_nowait(_frame(0))
    executor.submit(lambda: None).result(timeout=10)
    relay.put_nowait(_frame(1))
    executor.submit(lambda: None).result(timeout=10)
    assert calls == [0, 1]


def test_the_frame_waiting_behind_a_run_that_raises_runs_next_and_the_error_is_logged(
        executor, caplog):
    calls, waiting = [], threading.Event()

    def run(frame):
        calls.append(frame.seq)
        if frame.seq == 0:
            assert waiting.wait(timeout=10)
            raise RuntimeError("boom")

    relay = Relay("->b", executor, run, on_drop=lambda f: None)
    relay.put_nowait(_frame(0))
    relay.put_nowait(_frame(1))  # waits behind frame 0
    waiting.set()
    executor.submit(lambda: None).result(timeout=10)
    relay.put_nowait(_frame(2))
    executor.submit(lambda: None).result(timeout=10)
    assert calls == [0, 1, 2]  # frame 1 was neither lost nor run after a later one
    assert relay.drops == 0 and relay.qsize() == 0
    assert "->b: running frame 0 failed" in caplog.text and "boom" in caplog.text


def test_an_offer_is_asked_whether_it_replaces_and_a_refusal_changes_nothing(executor):
    segment, dropped, asked = Segment(), [], []

    def admit(answer: bool):
        def ask(replacing: bool) -> bool:
            asked.append(replacing)
            return answer
        return ask

    relay = Relay("->a", executor, segment, on_drop=lambda f: dropped.append(f.seq))
    assert relay.offer(_frame(0), admit(True))  # idle: nothing to replace
    assert segment.entered.acquire(timeout=10)
    assert relay.offer(_frame(1), admit(True))  # busy, nothing waiting yet
    assert not relay.offer(_frame(2), admit(False))  # would replace 1: refused
    assert relay.qsize() == 1 and dropped == [] and relay.drops == 0
    assert relay.offer(_frame(99), admit(True))  # replaces 1
    assert asked == [False, False, True, True] and dropped == [1]
    segment.go.release()
    segment.go.release()
    assert segment.done.wait(timeout=10)
    assert segment.ran == [0, 99]
