"""TrtEngine logic through a fake ``tensorrt`` module that really computes."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

from tests.trt_engines.fake_trt import FakeEngine, FakeNetworkSpec, make_fake_trt
from tests.trt_engines.toy_graph import INPUTS, OUTPUTS, ToyGenerator
from trt_engines.parity import Comparator, Tolerance, random_feeds
from trt_engines.profiles import BatchRange, profile_for
from trt_engines.torch_engine import TorchEngine
from trt_engines.trt_engine import TrtEngine

PROFILE = profile_for(INPUTS, BatchRange(min=1, opt=2, max=4))


class Handles:
    """A stream-handle source the test can change between runs."""

    def __init__(self, value: int = 1234) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


@pytest.fixture
def fake():
    trt, _ = make_fake_trt(ToyGenerator, OUTPUTS)
    engine = FakeEngine(FakeNetworkSpec(ToyGenerator(), INPUTS, OUTPUTS, dict(PROFILE)))
    return trt, engine


def make_engine(fake, handles: Handles | None = None) -> TrtEngine:
    trt, engine = fake
    return TrtEngine(engine, device="cpu", trt=trt, stream_handle=handles or Handles())


def context_calls(engine: TrtEngine, since: int = 0) -> list[tuple]:
    return engine._context.calls[since:]


def test_io_is_enumerated_by_name(fake):
    engine = make_engine(fake)
    assert engine.inputs == INPUTS and engine.outputs == OUTPUTS


def test_buffers_are_allocated_once_at_the_profile_maximum(fake):
    engine = make_engine(fake)
    assert engine.buffer_shapes() == {
        "feat": (4, 4, 8, 8),
        "latent": (4, 6),
        "image": (4, 3, 16, 16),
        "mask": (4, 1, 16, 16),
    }
    setup = context_calls(engine)
    assert ("set_input_shape", "feat", (4, 4, 8, 8)) in setup and ("infer_shapes",) in setup


def test_outputs_match_the_torch_reference_at_batch_1_and_3(fake):
    reference = TorchEngine(ToyGenerator(), INPUTS, OUTPUTS, device="cpu")
    report = Comparator([reference, make_engine(fake)], Tolerance(max_abs=1e-6)).run((1, 3, 4))
    assert report.passed, report.table()


def test_shapes_are_set_only_when_they_change(fake):
    engine = make_engine(fake)
    engine.run(random_feeds(INPUTS, 2))
    mark = len(context_calls(engine))
    engine.run(random_feeds(INPUTS, 2, seed=1))
    second = [c[0] for c in context_calls(engine, mark)]
    assert "set_input_shape" not in second and "infer_shapes" not in second
    mark = len(context_calls(engine))
    engine.run(random_feeds(INPUTS, 3))
    third = context_calls(engine, mark)
    assert [c for c in third if c[0] == "set_input_shape"] == [
        ("set_input_shape", "feat", (3, 4, 8, 8)),
        ("set_input_shape", "latent", (3, 6)),
    ]
    assert ("infer_shapes",) in third


def test_every_tensor_is_bound_before_execute_at_stable_addresses(fake):
    engine = make_engine(fake)
    ptrs = []
    for batch in (1, 3):
        mark = len(context_calls(engine))
        out = engine.run(random_feeds(INPUTS, batch))
        calls = context_calls(engine, mark)
        bound = [c[1] for c in calls if c[0] == "set_tensor_address"]
        assert sorted(bound) == ["feat", "image", "latent", "mask"]
        assert calls[-1][0] == "execute_async_v3"
        ptrs.append({k: v.data_ptr() for k, v in out.items()})
    assert ptrs[0] == ptrs[1]  # views into the persistent buffers


def test_outputs_are_views_valid_until_the_next_run(fake):
    engine = make_engine(fake)
    first = engine.run(random_feeds(INPUTS, 2, seed=0))
    kept = first["image"].clone()
    engine.run(random_feeds(INPUTS, 2, seed=1))
    assert not torch.equal(first["image"], kept)  # overwritten in place, as documented


def test_execute_uses_the_callers_stream_at_run_time(fake):
    handles = Handles(111)
    engine = make_engine(fake, handles)
    engine.run(random_feeds(INPUTS, 1))
    handles.value = 222  # e.g. another stage made its own stream current
    engine.run(random_feeds(INPUTS, 1))
    executed = [c[1] for c in context_calls(engine) if c[0] == "execute_async_v3"]
    assert executed == [111, 222]


def test_default_stream_is_warned_about_once(fake, caplog):
    engine = make_engine(fake, Handles(0))
    with caplog.at_level(logging.WARNING, logger="trt_engines.trt_engine"):
        engine.run(random_feeds(INPUTS, 1))
        engine.run(random_feeds(INPUTS, 1))
    assert len([r for r in caplog.records if "default CUDA stream" in r.message]) == 1


def test_out_of_profile_batch_is_refused_before_touching_trt(fake):
    engine = make_engine(fake)
    mark = len(context_calls(engine))
    with pytest.raises(ValueError, match=r"'feat' has shape \(5, 4, 8, 8\), outside.*max \(4,"):
        engine.run(random_feeds(INPUTS, 5))
    assert context_calls(engine, mark) == []


def test_wrong_dtype_and_device_are_refused(fake):
    engine = make_engine(fake)
    feeds = random_feeds(INPUTS, 1)
    with pytest.raises(ValueError, match="wrong dtype"):
        engine.run({**feeds, "latent": feeds["latent"].half()})
    meta = {k: v.to("meta") for k, v in feeds.items()}
    with pytest.raises(ValueError, match=r"is on meta.*never copies from the host"):
        engine.run(meta)


def test_failed_execute_raises(fake):
    engine = make_engine(fake)
    engine._context.execute_result = False
    with pytest.raises(RuntimeError, match="execute_async_v3 failed"):
        engine.run(random_feeds(INPUTS, 1))


def test_closed_engine_refuses(fake):
    with make_engine(fake) as engine:
        engine.run(random_feeds(INPUTS, 1))
    with pytest.raises(RuntimeError, match="closed"):
        engine.run(random_feeds(INPUTS, 1))


def test_missing_tensorrt_names_the_install_command(fake, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import now fails, as on this machine
    with pytest.raises(ImportError, match=r"pip install 'vicocam\[trt\]'"):
        TrtEngine(fake[1], device="cpu")
