"""The cross-session batcher: batched results equal one-by-one ones, and sessions stay apart."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import torch

from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.batching import BatchConfig, EngineBatcher, default_lanes, default_wait_s
from trt_engines.engine import Engine, EngineBase
from trt_engines.ort_engine import OrtEngine, OrtOptions
from trt_engines.torch_engine import TorchEngine

# Parity tolerance for one input run alone or inside a batch (same backend).
MAX_ABS = 1e-5


def _feeds(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {spec.name: spec.example(1, gen) for spec in INPUTS}


@pytest.fixture(params=["torch", "onnxruntime"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "torch":
        made: Engine = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    else:
        folded: Path = request.getfixturevalue("toy_folded")
        made = OrtEngine(folded, options=OrtOptions(intra_op_threads=1))
    with made:
        yield made


def _in_threads(calls: list[Callable[[], object]]) -> list[object]:
    """Start every call at once; each one's return value or exception."""
    results: list[object] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def body(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a member never got its result"
    return results


def test_a_batched_call_equals_the_same_frames_one_by_one(engine: Engine):
    # Rounds 0.6 s apart, a deadline of 0.3 s: like frames, but slow enough for any machine.
    batcher = EngineBatcher(engine, BatchConfig(max_batch=4, max_wait_s=0.3, active_window_s=60))
    members = [batcher.join() for _ in range(4)]
    feeds = [_feeds(seed) for seed in range(4)]
    alone = [engine.run(f) for f in feeds]
    alone = [{k: v.clone() for k, v in out.items()} for out in alone]
    for _ in range(2):  # rounds in step: the batcher learns that all four come together
        _in_threads([lambda m=m, f=f: m.run(f) for m, f in zip(members, feeds, strict=True)])
        time.sleep(0.6)
    before = batcher.stats.calls
    got = _in_threads([lambda m=m, f=f: m.run(f) for m, f in zip(members, feeds, strict=True)])
    assert batcher.stats.calls - before == 1, "four members in step should make one call"
    assert batcher.batch_sizes()[-1] == 4
    for out, ref in zip(got, alone, strict=True):
        assert isinstance(out, dict)
        for name, value in ref.items():
            assert out[name].shape == value.shape
            assert (out[name] - value).abs().max().item() <= MAX_ABS


def test_a_lone_member_never_waits():
    engine = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    batcher = EngineBatcher(engine, BatchConfig(max_wait_s=5.0))
    member = batcher.join()
    start = time.monotonic()
    for seed in range(3):
        member.run(_feeds(seed))
    # A lone member is every active member: it must not sit out the 5 s deadline.
    assert time.monotonic() - start < 5.0
    assert batcher.batch_sizes() == [1, 1, 1]


def test_a_bad_request_fails_only_its_sender(engine: Engine):
    batcher = EngineBatcher(engine, BatchConfig(max_wait_s=0.5))
    good, bad = batcher.join(), batcher.join()
    wrong = _feeds(1) | {"latent": torch.zeros(1, 3)}
    got = _in_threads([lambda: good.run(_feeds(0)), lambda: bad.run(wrong)])
    assert isinstance(got[0], dict)
    assert isinstance(got[1], ValueError) and "latent" in str(got[1])


class _FailsOnce(EngineBase):
    """Wraps an engine; its ``run`` raises whenever a marked input reaches it."""

    backend = "torch"

    def __init__(self, inner: Engine) -> None:
        super().__init__("fails", inner.inputs, inner.outputs, inner.device)
        self.inner = inner

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if bool((feeds["latent"] == 1234.0).any()):
            raise RuntimeError("poisoned frame")
        return self.inner.run(feeds)


def test_a_failing_batch_is_rerun_one_by_one():
    inner = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    batcher = EngineBatcher(_FailsOnce(inner), BatchConfig(max_wait_s=1.0))
    good, bad = batcher.join(), batcher.join()
    poisoned = _feeds(1)
    poisoned["latent"][0, 0] = 1234.0
    got = _in_threads([lambda: good.run(_feeds(0)), lambda: bad.run(poisoned)])
    assert isinstance(got[0], dict), got[0]
    ref = inner.run(_feeds(0))["image"]
    assert (got[0]["image"] - ref).abs().max().item() <= MAX_ABS
    assert isinstance(got[1], RuntimeError) and "poisoned" in str(got[1])


def test_a_member_not_due_is_not_waited_for():
    offset = [0.0]
    engine = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    batcher = EngineBatcher(engine, BatchConfig(max_wait_s=30.0, active_window_s=1e4),
                            clock=lambda: time.monotonic() + offset[0])
    live, slow = batcher.join(), batcher.join()
    slow.run(_feeds(0))
    offset[0] += 100.0
    slow.run(_feeds(0))  # one request every 100 s: the next is not due for 100 s
    start = time.monotonic()
    live.run(_feeds(1))
    assert time.monotonic() - start < 30.0, "waited out the deadline for a member not due"


def test_a_due_member_is_waited_for_until_the_deadline():
    engine = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    batcher = EngineBatcher(engine, BatchConfig(max_wait_s=0.5, active_window_s=60))
    live, quick = batcher.join(), batcher.join()
    for _ in range(3):
        quick.run(_feeds(0))  # a member with a short gap between requests: due any moment
    start = time.monotonic()
    live.run(_feeds(1))
    assert time.monotonic() - start >= 0.45
    assert batcher.batch_sizes()[-1] == 1


def test_a_stalled_member_costs_the_others_only_the_deadline():
    engine = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    batcher = EngineBatcher(engine, BatchConfig(max_wait_s=0.05, active_window_s=60))
    live, stalled = batcher.join(), batcher.join()
    for _ in range(2):
        stalled.run(_feeds(0))  # due again at once, then silent
    start = time.monotonic()
    for seed in range(5):
        live.run(_feeds(seed))
    elapsed = time.monotonic() - start
    # Each call waits out the deadline for the silent member, never longer than needed.
    assert batcher.batch_sizes()[-5:] == [1] * 5
    assert elapsed < 5 * (0.05 + 1.0)


def test_members_join_and_leave_mid_stream(engine: Engine):
    batcher = EngineBatcher(engine, BatchConfig(max_wait_s=0.2, active_window_s=60))
    members = [batcher.join() for _ in range(3)]
    members[2].close()  # leaves: no longer waited for
    start = time.monotonic()
    got = _in_threads([lambda m=m: m.run(_feeds(7)) for m in members[:2]])
    assert all(isinstance(g, dict) for g in got)
    assert batcher.members_active == 2
    late = batcher.join()
    assert isinstance(late.run(_feeds(8)), dict)
    with pytest.raises(RuntimeError, match="closed"):
        members[2].run(_feeds(9))
    assert time.monotonic() - start < 30


def test_a_member_sends_one_frame_per_call():
    engine = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    member = EngineBatcher(engine).join()
    two = {spec.name: spec.example(2) for spec in INPUTS}
    with pytest.raises(ValueError, match="one frame per call"):
        member.run(two)


def test_batch_config_rejects_nonsense():
    with pytest.raises(ValueError, match="max_batch"):
        BatchConfig(max_batch=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        BatchConfig(max_wait_s=-1)
    with pytest.raises(ValueError, match="lanes"):
        BatchConfig(lanes=0)


class _Meeting(EngineBase):
    """An engine whose calls each wait for another call to be running at the same time."""

    backend = "torch"
    shareable = True

    def __init__(self, inner: Engine) -> None:
        super().__init__("meeting", inner.inputs, inner.outputs, inner.device)
        self.inner = inner
        self.together = threading.Barrier(2, timeout=10)

    def run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.together.wait()
        return self.inner.run(feeds)


def test_a_thread_safe_cpu_engine_gets_a_lane_per_core_and_others_one():
    inner = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    meeting = _Meeting(inner)
    assert default_lanes(meeting) == len(os.sched_getaffinity(0))
    assert default_lanes(_FailsOnce(inner)) == 1  # not thread-safe: one call at a time
    on_gpu = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    on_gpu.device = torch.device("cuda", 0)  # what the defaults read; nothing runs
    assert default_lanes(on_gpu) == 1
    assert (default_wait_s(inner), default_wait_s(on_gpu)) == (0.0, 0.004)
    batcher = EngineBatcher(meeting, BatchConfig(max_batch=1, lanes=2))
    a, b = batcher.join(), batcher.join()
    # Two lanes: both calls run at once (one lane would leave the barrier broken).
    got = _in_threads([lambda: a.run(_feeds(0)), lambda: b.run(_feeds(1))])
    assert all(isinstance(g, dict) for g in got), got
    assert batcher.batch_sizes() == [1, 1]
