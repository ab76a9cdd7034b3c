"""The webrtc benchmark's latency figures from (time, latency) samples."""

from __future__ import annotations

from benchmarks.webrtc import _factory, latency_figures
from stages.webrtc.session import IdentityStage, identity_factory


def test_thirds_split_the_window_by_time():
    samples = [(t / 10, 20.0 if t < 30 else 60.0) for t in range(90)]
    figures = latency_figures(samples)
    assert figures["latency_p50_ms_first_third"] == 20.0
    assert figures["latency_p50_ms_last_third"] == 60.0
    assert figures["latency_samples"] == 90
    assert figures["latency_p95_ms"] == 60.0


def test_no_samples_gives_none_not_nan():
    figures = latency_figures([])
    assert figures["latency_p50_ms"] is None and figures["latency_p50_ms_last_third"] is None


def test_stages_are_named_or_given():
    assert _factory("identity") is identity_factory
    assert _factory(identity_factory) is identity_factory
    stages = _factory("stages.webrtc.session:identity_factory")(None)  # type: ignore[arg-type]
    assert isinstance(stages[0], IdentityStage)
