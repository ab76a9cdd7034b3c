"""Fuzzing frames into a running avatar session: pictures of any size, channel count,
dtype and layout enter a live pipeline one at a time. Each is delivered, or refused with
a clear error and counted, and the pipeline keeps running; a second session sharing the
model (batched, as ``vicocam serve`` runs them) keeps delivering throughout.
"""

from __future__ import annotations

import queue
import threading
import time
from fractions import Fraction

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.control import SettingsBox
from pipeline.runtime import Pipeline, RunMode, RuntimeConfig
from pipeline.stage import SourceFrame, SourceInfo
from stages.io import NullSink
from stages.reenact.live_settings import AvatarKey, LiveSettings, OutputMode
from stages.reenact.person import PersonConfig, PersonSource, avatar_loaders, person_portrait
from stages.reenact.shared_sessions import session_factory
from tests.fuzz import tally
from tests.fuzz.profiles import budget, case_timeout_s
from trt_engines.backends import BackendName
from trt_engines.batching import BatchConfig
from trt_engines.bundle import ModelSpec, open_bundle

CASE_S = 20.0
FACE = person_portrait(0, 256).image


class FeedSource:
    """A self-paced source (like a peer's track) that yields what the test puts in it."""

    name = "fuzz_feed"

    def __init__(self) -> None:
        self.frames: queue.Queue[object] = queue.Queue(maxsize=1)
        self.closed = threading.Event()

    def open(self) -> SourceInfo:
        return SourceInfo(640, 480, Fraction(30), self_paced=True)

    def read(self) -> SourceFrame | None:
        while not self.closed.is_set():
            try:
                return SourceFrame(self.frames.get(timeout=0.05))  # type: ignore[arg-type]
            except queue.Empty:
                continue
        return None

    def close(self) -> None:
        self.closed.set()


class Session:
    """One avatar pipeline running in its own thread, as a server session runs it."""

    def __init__(self, source, factory) -> None:
        settings = SettingsBox(LiveSettings(avatar=AvatarKey("person:1"),
                                            output=OutputMode.PASTE))
        self.sink = NullSink()
        # Most fuzzed pictures are refused: without a large limit, ten of them in a row
        # would rightly stop the run (a source that sends only garbage is broken).
        self.pipeline = Pipeline(source, [*factory(settings), self.sink],
                                 RuntimeConfig(mode=RunMode.LIVE, max_consecutive_errors=10**6))
        self.ended: list[object] = []
        self.thread = threading.Thread(target=self._run, name=f"fuzz-{source.name}")
        self.thread.start()

    def _run(self) -> None:
        import asyncio

        try:
            self.ended.append(asyncio.run(self.pipeline.run()).reason)
        except Exception as exc:
            self.ended.append(exc)

    def accounted(self) -> int:
        """Frames read that have left the graph: delivered, refused, failed or dropped."""
        m = self.pipeline.metrics
        return (m.frames_out + m.frames_rejected + m.frames_failed + m.frames_filtered
                + m.frames_dropped)

    def stop(self) -> object:
        self.pipeline.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the session did not stop"
        return self.ended[0]


@pytest.fixture(scope="module")
def sessions():
    bundle = open_bundle(ModelSpec(backend=BackendName.TORCH))
    factory = session_factory(bundle, loaders=avatar_loaders(), batching=BatchConfig())
    healthy = Session(PersonSource(PersonConfig(width=320, height=240, fps=10, clip_frames=8,
                                                name="healthy")), factory)
    fuzzed = Session(FeedSource(), factory)
    yield fuzzed, healthy
    reasons = fuzzed.stop(), healthy.stop()
    bundle.close()
    assert reasons == ("stopped", "stopped"), reasons


@st.composite
def pictures(draw: st.DrawFn) -> object:
    """An array of any size (0..2000 a side), channel count, dtype and memory layout."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([None, [[1, 2, 3]], b"\x00" * 12, 3.0, "frame"]))
    height, width = draw(st.integers(0, 2000)), draw(st.integers(0, 2000))
    base = cv2.resize(FACE, (max(width, 1), max(height, 1)))[:height, :width]
    if draw(st.booleans()):
        base = np.random.default_rng(draw(st.integers(0, 99))).integers(
            0, 256, base.shape, dtype=np.uint8)
    picture = base if draw(st.booleans()) else draw(_misshapen(base))
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    return np.asfortranarray(picture) if layout == "F" else \
        picture[::-1] if layout == "strided" else picture


@st.composite
def _misshapen(draw: st.DrawFn, base: np.ndarray) -> np.ndarray:
    """``base`` with another channel count (or none) and another dtype."""
    height, width = base.shape[:2]
    channels = draw(st.sampled_from([None, 1, 2, 3, 4, 5]))
    shaped = base[..., 0] if channels is None else np.resize(base, (height, width, channels))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.bool_, np.int64]))
    return shaped.astype(dtype)


def feed(session: Session, picture: object) -> None:
    """Put one picture in and wait until it left the graph, one way or the other."""
    before = session.accounted()
    session.pipeline.source.frames.put(picture, timeout=CASE_S)
    deadline = time.monotonic() + CASE_S
    while session.accounted() <= before:
        assert not session.ended, f"the session ended: {session.ended}"
        assert time.monotonic() < deadline, "a frame did not leave the graph (a hang)"
        time.sleep(0.002)


def outcome(session: Session, before: dict[str, int]) -> str:
    now = counters(session)
    return next(name for name, value in now.items() if value > before[name])


def counters(session: Session) -> dict[str, int]:
    m = session.pipeline.metrics
    return {"delivered": m.frames_out, "rejected": m.frames_rejected, "failed": m.frames_failed,
            "filtered": m.frames_filtered, "dropped": m.frames_dropped}


@pytest.mark.timeout(case_timeout_s(ci=240, fuzz=1800))
@budget(ci=40, fuzz=600)
@given(picture=pictures())
def test_any_frame_is_delivered_or_refused_and_the_session_runs_on(sessions, picture):
    fuzzed, _ = sessions
    before = counters(fuzzed)
    feed(fuzzed, picture)
    tally.count("frames.pipeline", outcome(fuzzed, before))


def test_the_other_session_kept_delivering_without_errors(sessions):
    fuzzed, healthy = sessions
    delivered = healthy.pipeline.metrics.frames_out
    time.sleep(1.0)
    assert healthy.pipeline.metrics.frames_out > delivered
    assert healthy.pipeline.metrics.frames_failed == 0 and not healthy.ended
    assert fuzzed.pipeline.metrics.frames_failed == 0 and not fuzzed.ended
