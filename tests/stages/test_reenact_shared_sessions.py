"""The per-session factory: each session's own stages around its own `LiveSettings` box."""

import threading
import time

import numpy as np
import pytest
import torch

from networks.avatar import Reenactor
from networks.config import custom_config
from networks.generator import Generator
from pipeline.control import SettingsBox
from stages.face.types import CropBox
from stages.reenact.avatar import Portrait
from stages.reenact.live_settings import AvatarKey, LiveSettings
from stages.reenact.shared_sessions import ReleaseEngines, SharedAvatars, session_factory
from stages.reenact.stages import AvatarStage, DriverMotionStage, GenerateStage
from trt_engines.backends import SHAREABLE_BACKENDS, BackendName
from trt_engines.batching import BatchConfig, BatchMember
from trt_engines.bundle import ModelBundle, ModelSpec, open_model_engines, torch_engines
from trt_engines.torch_engine import TorchEngine


class UnshareableTorchEngine(TorchEngine):
    """A torch engine that says sessions must not share it, as a TensorRT engine does."""

    shareable = False


def _bundle(shareable=True):
    config = custom_config("vicoface-64s", name="vicoface-tiny", size=16,
                           channels=(8, 8, 8), style_dim=16, motion_dim=4, id_dim=2)
    reenactor = Reenactor(Generator(config).eval())
    motion, generate = torch_engines(reenactor, torch.device("cpu"))
    if not shareable:
        motion = UnshareableTorchEngine(reenactor.motion_graph, motion.inputs, motion.outputs,
                                        device="cpu", name="motion")
    return ModelBundle(reenactor, motion, generate, "tiny", trained=False)


class Portraits:
    """A portrait loader (``grey:N``) that counts its loads, from any thread."""

    def __init__(self):
        self.loads = 0
        self._lock = threading.Lock()

    def __call__(self, arg):
        with self._lock:
            self.loads += 1
        image = np.full((64, 64, 3), 40 * int(arg), np.uint8)
        return Portrait(image, CropBox(32.0, 32.0, 40.0))


def _stage(stages, kind):
    return next(s for s in stages if isinstance(s, kind))


def test_each_session_gets_its_own_stages_around_its_own_box():
    bundle = _bundle()
    factory = session_factory(bundle, initial=AvatarKey("grey:1"),
                              loaders={"grey": Portraits()})
    first_box = SettingsBox(LiveSettings(avatar=AvatarKey("grey:2")))
    second_box = SettingsBox(LiveSettings())
    first, second = factory(first_box), factory(second_box)
    assert [s.name for s in first] == ["face_track", "avatar", "motion", "generate", "composite"]
    assert _stage(first, AvatarStage).settings is first_box
    assert _stage(second, AvatarStage).settings is second_box
    assert all(a is not b for a, b in zip(first, second, strict=True))
    # Shareable engines (torch, onnxruntime) are the bundle's, in every session.
    assert bundle.shareable and not factory.per_session_engines
    assert _stage(second, GenerateStage).engine is bundle.generate


def test_avatars_are_prepared_once_for_all_sessions():
    portraits = Portraits()
    factory = session_factory(_bundle(), initial=AvatarKey("grey:1"), loaders={"grey": portraits})
    sessions = [factory(SettingsBox(LiveSettings())) for _ in range(3)]
    for stages in sessions:
        _stage(stages, AvatarStage).start()  # the initial avatar, as the runtime would
    assert portraits.loads == 1 and len(factory.avatars) == 1
    shown = [_stage(s, AvatarStage).library.current for s in sessions]
    assert shown[0] is shown[1] is shown[2]  # one read-only PreparedAvatar
    upload = AvatarKey("upload:abc", image=np.full((64, 64, 3), 90, np.uint8))
    with pytest.raises(ValueError, match="face"):
        factory.prepare(upload)  # a flat picture has no face for the detector


def test_the_shared_avatar_cache_is_bounded():
    prepared: list[AvatarKey] = []

    def prepare(key):
        prepared.append(key)
        return key  # stands in for a PreparedAvatar

    cache = SharedAvatars(prepare, keep=2)
    for source in ("a", "b", "a", "c", "b"):
        cache(AvatarKey(source))
    # "a" stayed (used again), "b" was dropped for "c" and prepared again.
    assert [k.source for k in prepared] == ["a", "b", "c", "b"] and len(cache) == 2
    with pytest.raises(ValueError):
        SharedAvatars(prepare, keep=0)


def test_an_unshareable_backend_gets_engines_per_session_closed_when_it_stops():
    bundle = _bundle(shareable=False)
    assert not bundle.shareable
    factory = session_factory(bundle, engines=ModelSpec(backend=BackendName.TORCH))
    assert factory.per_session_engines
    first, second = factory(SettingsBox(LiveSettings())), factory(SettingsBox(LiveSettings()))
    engines = [_stage(s, DriverMotionStage).engine for s in (first, second)]
    assert engines[0] is not engines[1] and bundle.motion not in engines
    release = first[-1]
    assert isinstance(release, ReleaseEngines) and engines[0] in release.engines
    release.stop()
    with pytest.raises(RuntimeError):
        engines[0].run({"driver": torch.zeros(1, 3, 16, 16)})
    # Without engine options the bundle's engines are used as they are.
    assert not session_factory(bundle).per_session_engines


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_shareable_engines_give_concurrent_callers_their_own_results(backend, tmp_path):
    """What makes `SHAREABLE_BACKENDS` safe: one engine, several session threads at once."""
    bundle = _bundle()
    options = ModelSpec(backend=BackendName(backend), cache_dir=tmp_path)
    motion, _ = open_model_engines(bundle.reenactor, options)
    assert motion.backend == backend and motion.backend in SHAREABLE_BACKENDS and motion.shareable
    torch.manual_seed(1)
    drivers = [torch.rand(1, 3, 16, 16) * 2 - 1 for _ in range(4)]
    expected = [motion.run({"driver": d})["coeffs"].clone() for d in drivers]
    start = threading.Barrier(len(drivers))
    wrong: list[int] = []

    def session(index: int) -> None:
        start.wait()
        for _ in range(15):
            got = motion.run({"driver": drivers[index]})["coeffs"]
            if not torch.allclose(got, expected[index], atol=1e-6):
                wrong.append(index)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(drivers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    motion.close()
    assert wrong == []


def test_batched_sessions_share_one_batcher_per_engine_and_leave_it_at_stop():
    bundle = _bundle(shareable=False)  # an engine nobody may share, as TensorRT's
    factory = session_factory(bundle, initial=AvatarKey("grey:1"), batching=BatchConfig())
    assert factory.batchers is not None and not factory.per_session_engines
    first, second = factory(SettingsBox(LiveSettings())), factory(SettingsBox(LiveSettings()))
    members = [_stage(s, GenerateStage).engine for s in (first, second)]
    assert isinstance(members[0], BatchMember) and members[0] is not members[1]
    assert all(m.batcher is factory.batchers[1] for m in members)
    assert factory.batchers[1].members_active == 2
    release = first[-1]
    assert isinstance(release, ReleaseEngines)
    release.stop()
    assert factory.batchers[1].members_active == 1
    with pytest.raises(RuntimeError, match="closed"):  # the member, not the shared engine
        members[0].run({})
    motion = _stage(second, DriverMotionStage).engine
    assert motion.run({"driver": torch.zeros(1, 3, 16, 16)})["coeffs"].shape[0] == 1


def test_sessions_with_different_avatars_and_strengths_batch_together():
    """Avatar features and strengths are inputs: a batched frame is each session's own."""
    bundle = _bundle()
    factory = session_factory(bundle, initial=AvatarKey("grey:1"), loaders={"grey": Portraits()},
                              batching=BatchConfig(max_wait_s=0.3, active_window_s=60))
    boxes = [SettingsBox(LiveSettings(avatar=AvatarKey(f"grey:{i}"), strength=s))
             for i, s in ((1, 1.0), (3, 0.4))]
    sessions = [factory(box) for box in boxes]
    for stages in sessions:
        _stage(stages, AvatarStage).start()
    feeds = []
    for stages, box in zip(sessions, boxes, strict=True):
        avatar = _stage(stages, AvatarStage).library.current
        torch.manual_seed(len(feeds))
        width = next(s.shape[1] for s in bundle.generate.inputs if s.name == "alpha")
        alpha = torch.randn(1, width) * box.get().strength
        feeds.append({**avatar.feeds, "alpha": alpha})
    alone = [bundle.generate.run(f)["image"].clone() for f in feeds]
    members = [_stage(s, GenerateStage).engine for s in sessions]
    got: list = [None, None]

    def call(i: int) -> None:
        start.wait()
        got[i] = members[i].run(feeds[i])["image"]

    for _ in range(3):  # in step: from the third round on, each waits for the other
        start = threading.Barrier(2)
        threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        time.sleep(0.6)  # frames 0.6 s apart, the deadline 0.3 s
    assert factory.batchers is not None and factory.batchers[1].batch_sizes()[-1] == 2
    for mine, ref in zip(got, alone, strict=True):
        assert torch.allclose(mine, ref, atol=1e-5)
    assert not torch.allclose(got[0], got[1])


def test_sessions_share_one_face_detector():
    from stages.face.stage import FaceTrackStage

    factory = session_factory(_bundle(), initial=AvatarKey("grey:1"))
    first, second = factory(SettingsBox(LiveSettings())), factory(SettingsBox(LiveSettings()))
    trackers = [_stage(s, FaceTrackStage) for s in (first, second)]
    for tracker in trackers:
        tracker.start()
    assert trackers[0]._tracker is not trackers[1]._tracker  # each its own state
    assert trackers[0]._tracker.detector is trackers[1]._tracker.detector is factory.detector
