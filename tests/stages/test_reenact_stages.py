"""The avatar-path stages with fake engines: composition, controls, fallback, streams."""

import threading
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from networks.avatar import Avatar
from networks.motion import MotionMode
from pipeline.control import SettingsBox
from pipeline.frame import Frame
from pipeline.runtime import Pipeline, RunMode, RuntimeConfig, run_pipeline
from pipeline.stage import SourceFrame, SourceInfo, StageBase
from stages.face.crop import crop_affine
from stages.face.types import CropBox, FaceCrop, TrackStatus
from stages.reenact.avatar import AvatarLibrary, PreparedAvatar
from stages.reenact.live_settings import AvatarKey, LiveSettings, OutputMode
from stages.reenact.stages import (
    AvatarStage,
    CompositeConfig,
    CompositeStage,
    DriverMotionStage,
    EngineIOError,
    GenerateStage,
)
from stages.reenact.types import AvatarFrame, AvatarRender, DriverMotion
from trt_engines.engine import TensorSpec
from trt_engines.streams import CpuStream, CudaStream
from trt_engines.torch_engine import TorchEngine

S = 8  # model crop side
M = 6  # coefficients
MOTION_DIM = 4
FRAME = (40, 48)  # (width, height) of the driving pictures
BOX = CropBox(20, 24, 20)
F32 = torch.float32


# --------------------------------------------------------------------------- fakes


class FakeMotion(nn.Module):
    """coeffs[:, i] = mean of the crop + i / 100 (the crop's brightness is the motion)."""

    def forward(self, driver):
        return driver.mean(dim=(1, 2, 3))[:, None] + torch.arange(M) / 100


class FakeGenerate(nn.Module):
    """Renders a flat picture of value tanh(alpha[0]); remembers every alpha."""

    def __init__(self):
        super().__init__()
        self.alphas = []

    def forward(self, latent, alpha, feat_0):
        self.alphas.append(alpha.clone())
        return torch.tanh(alpha[:, :1, None, None]).expand(-1, 3, S, S) + 0 * latent.sum()


def motion_engine():
    return TorchEngine(FakeMotion(), [TensorSpec("driver", (None, 3, S, S), F32)],
                       [TensorSpec("coeffs", (None, M), F32)], device="cpu")


def generate_engine(module=None):
    inputs = [TensorSpec("latent", (None, 4), F32), TensorSpec("alpha", (None, M), F32),
              TensorSpec("feat_0", (None, 2, 4, 4), F32)]
    outputs = [TensorSpec("image", (None, 3, S, S), F32)]
    return TorchEngine(module or FakeGenerate(), inputs, outputs, device="cpu")


def avatar_coeffs(name):
    return torch.full((1, M), 0.1 * (ord(name[0]) - ord("a") + 1))


def fake_avatar(key, rest_value=-0.5):
    """A 40x40 portrait of value 50 whose face sits at BOX; coefficients from the name."""
    coeffs = avatar_coeffs(key.source)
    model = Avatar(torch.zeros(1, 4), (torch.zeros(1, 2, 4, 4),), coeffs, MOTION_DIM)
    portrait = torch.full((1, 3, FRAME[1], FRAME[0]), 50, dtype=torch.uint8)
    feeds = {"latent": model.latent, "feat_0": model.feats[0]}
    return PreparedAvatar(key, portrait, crop_affine(BOX, S), model, feeds,
                          torch.full((1, 3, S, S), rest_value))


class Preparer:
    """Fake `AvatarPreparer`: records threads; ``hold`` blocks a key until released."""

    def __init__(self, fail=()):
        self.calls = []
        self.threads = []
        self.fail = set(fail)
        self.hold = {}

    def __call__(self, key):
        self.calls.append(key.source)
        self.threads.append(threading.current_thread().name)
        gate = self.hold.get(key.source)
        if gate is not None:
            gate.wait(30)
        if key.source in self.fail:
            raise ValueError(f"no face in {key.source}")
        return fake_avatar(key)


class ScriptedFace(StageBase):
    """Stores a `FaceCrop` per frame: LOST for the listed sequence numbers.

    The crop is a flat picture of value ``10 * (seq + 1)``, so the fake
    motion engine sees a different motion on every frame.
    """

    name = "face"
    produces = frozenset({FaceCrop})

    def __init__(self, lost=()):
        self.lost = set(lost)

    def process(self, frame):
        if frame.seq in self.lost:
            frame.put(FaceCrop(TrackStatus.LOST, None, None, None, None, 0.0))
            return frame
        crop = np.full((S, S, 3), 10 * (frame.seq + 1), np.uint8)
        frame.put(FaceCrop(TrackStatus.TRACKING, BOX, crop_affine(BOX, S), crop, None, 0.0))
        return frame


class Frames:
    """``count`` driving pictures; pixel values encode the index."""

    name = "frames"

    def __init__(self, count):
        self.count, self.sent = count, 0

    def open(self):
        return SourceInfo(FRAME[0], FRAME[1], Fraction(30), False, self.count)

    def read(self):
        if self.sent >= self.count:
            return None
        self.sent += 1
        image = np.full((FRAME[1], FRAME[0], 3), self.sent, np.uint8)
        image[0, 0] = (1, 2, 3)
        return SourceFrame(image)

    def close(self):
        return None


class Keep(StageBase):
    """Sink that keeps every frame; ``arrived`` fires per frame."""

    name = "keep"

    def __init__(self):
        self.frames = []
        self.arrived = threading.Semaphore(0)

    def process(self, frame):
        self.frames.append(frame)
        self.arrived.release()
        return frame


def avatar_path(settings, generate=None, lost=(), preparer=None, composite=None):
    generate = generate or generate_engine()
    return [
        ScriptedFace(lost),
        AvatarStage(settings, preparer or Preparer()),
        DriverMotionStage(motion_engine(), CpuStream()),
        GenerateStage(generate, CpuStream(), "vicoface"),
        CompositeStage(CpuStream(), composite),
    ]


def run_frames(stages, count, mode=RunMode.OFFLINE):
    sink = Keep()
    report = run_pipeline(Frames(count), [*stages, sink], RuntimeConfig(mode=mode))
    assert report.metrics.frames_failed == 0
    return sink.frames


def alphas_of(stages):
    return [a[0] for a in stages[3].engine.module.alphas]


def driver_coeffs(seq):
    """What FakeMotion gives for frame ``seq`` of `ScriptedFace`."""
    value = 10 * (seq + 1) / 127.5 - 1
    return value + torch.arange(M) / 100


def box(**changes):
    return SettingsBox(LiveSettings(avatar=AvatarKey("a"), **changes))


# --------------------------------------------------------------------------- composition


def test_cross_mode_renders_driver_motion_with_the_avatars_identity():
    stages = avatar_path(box(mode=MotionMode.CROSS))
    run_frames(stages, 2)
    a_s = avatar_coeffs("a")[0]
    for seq, alpha in enumerate(alphas_of(stages)):
        d = driver_coeffs(seq)
        assert torch.allclose(alpha[:MOTION_DIM], d[:MOTION_DIM], atol=1e-5)
        assert torch.allclose(alpha[MOTION_DIM:], a_s[MOTION_DIM:])


def test_the_default_mode_of_vicoface_is_cross():
    stages = avatar_path(box())
    run_frames(stages, 1)
    assert torch.allclose(alphas_of(stages)[0][MOTION_DIM:], avatar_coeffs("a")[0][MOTION_DIM:])


def test_absolute_mode_renders_the_drivers_coefficients():
    stages = avatar_path(box(mode=MotionMode.ABSOLUTE))
    run_frames(stages, 2)
    for seq, alpha in enumerate(alphas_of(stages)):
        assert torch.allclose(alpha, driver_coeffs(seq), atol=1e-5)


def test_relative_mode_and_reset_reference():
    settings = box(mode=MotionMode.RELATIVE)
    stages = avatar_path(settings)
    chain = _Chain(stages)
    a_s = avatar_coeffs("a")[0]
    for seq in range(3):
        chain.push(seq)
    settings.update(reset_count=1)
    for seq in range(3, 5):
        chain.push(seq)
    alphas = alphas_of(stages)
    expect = a_s.clone()
    expect[:MOTION_DIM] += (driver_coeffs(2) - driver_coeffs(0))[:MOTION_DIM]
    assert torch.allclose(alphas[0], a_s, atol=1e-6)  # the first frame is the reference
    assert torch.allclose(alphas[2], expect, atol=1e-5)
    assert torch.allclose(alphas[3], a_s, atol=1e-6)  # reset: frame 3 is the new reference
    expect = a_s.clone()
    expect[:MOTION_DIM] += (driver_coeffs(4) - driver_coeffs(3))[:MOTION_DIM]
    assert torch.allclose(alphas[4], expect, atol=1e-5)
    assert [f.get(AvatarRender).reference_reset for f in chain.frames] == [
        True, False, False, True, False]


def test_a_mode_change_starts_a_new_reference():
    settings = box(mode=MotionMode.RELATIVE)
    stages = avatar_path(settings)
    chain = _Chain(stages)
    chain.push(0)
    settings.update(mode=MotionMode.ABSOLUTE)
    chain.push(1)
    settings.update(mode=MotionMode.RELATIVE)
    chain.push(2)
    chain.push(3)
    alphas = alphas_of(stages)
    assert torch.allclose(alphas[2], avatar_coeffs("a")[0], atol=1e-6)
    assert not torch.allclose(alphas[3], avatar_coeffs("a")[0], atol=1e-3)


def test_strength_scales_the_motion_from_the_avatar_at_rest():
    stages = avatar_path(box(mode=MotionMode.ABSOLUTE, strength=0.0))
    run_frames(stages, 1)
    assert torch.allclose(alphas_of(stages)[0], avatar_coeffs("a")[0])
    stages = avatar_path(box(mode=MotionMode.ABSOLUTE, strength=0.5))
    run_frames(stages, 1)
    half = (avatar_coeffs("a")[0] + driver_coeffs(0)) / 2
    assert torch.allclose(alphas_of(stages)[0], half, atol=1e-5)


class _Chain:
    """Runs frames through the stages one at a time, in order (no runtime)."""

    def __init__(self, stages):
        self.stages = stages
        for stage in stages:
            stage.start()
        self.frames = []

    def push(self, seq, image=None):
        frame = Frame(seq, 0, image if image is not None else np.zeros((FRAME[1], FRAME[0], 3),
                                                                          np.uint8))
        for stage in self.stages:
            frame = stage.process(frame)
        self.frames.append(frame)
        return frame


# --------------------------------------------------------------------------- no face


def test_no_face_shows_the_rest_picture_and_recovery_takes_a_new_reference():
    settings = box(mode=MotionMode.RELATIVE, output=OutputMode.CROP)
    stages = avatar_path(settings, lost={1, 2})
    frames = run_frames(stages, 5)
    renders = [f.get(AvatarRender) for f in frames]
    assert [r.at_rest for r in renders] == [False, True, True, False, False]
    assert len(alphas_of(stages)) == 3  # the generator never ran without a face
    rest = np.full((S, S), round((-0.5 + 1) * 127.5))
    crop_side = FRAME[0]  # the crop is letterboxed into the 40x48 output
    top = (FRAME[1] - crop_side) // 2
    for f in frames[1:3]:
        assert np.all(np.abs(f.image[top:top + crop_side, :, 0] - rest[0, 0]) <= 1)
    assert torch.allclose(alphas_of(stages)[1], avatar_coeffs("a")[0], atol=1e-6)


def test_a_run_where_the_face_never_appears_never_stalls():
    stages = avatar_path(box(), lost=set(range(6)))
    frames = run_frames(stages, 6, mode=RunMode.LIVE)
    assert frames and all(f.get(AvatarRender).at_rest for f in frames)
    assert not alphas_of(stages)


# --------------------------------------------------------------------------- output modes


def test_output_modes_and_fixed_output_size():
    settings = box(output=OutputMode.SIDE_BY_SIDE)
    stages = avatar_path(settings)
    chain = _Chain(stages)
    driver = np.random.default_rng(0).integers(0, 256, (FRAME[1], FRAME[0], 3), dtype=np.uint8)
    side = chain.push(0, driver.copy()).image
    assert side.shape == (FRAME[1], 2 * FRAME[0], 3)
    assert np.array_equal(side[:, : FRAME[0]], driver)  # left half: the driver, untouched
    settings.update(output=OutputMode.PASTE)
    pasted = chain.push(1, driver.copy()).image
    assert pasted.shape == side.shape  # the size chosen first stays
    assert pasted[0, 0].tolist() == [0, 0, 0]  # letterbox around the 40x48 portrait
    settings.update(output=OutputMode.CROP)
    assert chain.push(2, driver.copy()).image.shape == side.shape


def test_paste_output_keeps_the_portrait_outside_the_face():
    stages = avatar_path(box(output=OutputMode.PASTE),
                         composite=CompositeConfig(output_size=FRAME))
    frames = run_frames(stages, 1)
    image = frames[0].image
    assert image.shape == (FRAME[1], FRAME[0], 3)
    assert np.all(image[:4] == 50) and np.all(image[-4:] == 50)  # far from the crop
    assert not np.all(image[24, 20] == 50)  # the crop centre shows the rendered face


# --------------------------------------------------------------------------- controls


class OneAtATime(StageBase):
    """A gate: each frame waits until the test lets exactly one through."""

    name = "gate"

    def __init__(self):
        self.entered = threading.Semaphore(0)
        self.allowed = threading.Semaphore(0)

    def process(self, frame):
        self.entered.release()
        if not self.allowed.acquire(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return frame


def test_a_settings_change_takes_effect_on_the_next_frame_out_of_band():
    settings = box(output=OutputMode.SIDE_BY_SIDE, strength=1.0)
    gate, sink = OneAtATime(), Keep()
    stages = avatar_path(settings)
    pipeline = Pipeline(Frames(2), [gate, *stages, sink], RuntimeConfig(mode=RunMode.OFFLINE))
    runner = threading.Thread(target=lambda: __import__("asyncio").run(pipeline.run()))
    runner.start()
    try:
        assert gate.entered.acquire(timeout=30)
        gate.allowed.release()
        assert sink.arrived.acquire(timeout=30)  # frame 0 done with the old settings
        assert gate.entered.acquire(timeout=30)  # frame 1 held before the avatar path
        changed = settings.update(output=OutputMode.CROP, strength=0.0)
        gate.allowed.release()
        assert sink.arrived.acquire(timeout=30)
    finally:
        gate.allowed.release()
        runner.join(30)
    first, second = sink.frames
    assert first.get(AvatarFrame).settings.output is OutputMode.SIDE_BY_SIDE
    assert second.get(AvatarFrame).settings is changed  # the box's object, not a message
    alphas = alphas_of(stages)
    assert torch.allclose(alphas[1], avatar_coeffs("a")[0])  # strength 0 on frame 1
    assert pipeline.metrics.frames_in == 2  # nothing but the two frames went through the edges


def test_avatar_switch_prepares_off_the_frame_path_and_swaps_whole():
    settings = box()
    preparer = Preparer()
    stage = AvatarStage(settings, preparer)
    stage.start()
    release = threading.Event()
    preparer.hold["b"] = release
    settings.update(avatar=AvatarKey("b"))
    frame = stage.process(Frame(0, 0, np.zeros((4, 4, 3), np.uint8)))  # returns at once
    assert frame.get(AvatarFrame).avatar.key.source == "a"
    release.set()
    stage.library.wait(30)
    frame = stage.process(Frame(1, 0, np.zeros((4, 4, 3), np.uint8)))
    assert frame.get(AvatarFrame).avatar.key.source == "b"
    assert preparer.threads[1].startswith("vicocam-avatar")
    settings.update(avatar=AvatarKey("a"))
    frame = stage.process(Frame(2, 0, np.zeros((4, 4, 3), np.uint8)))
    assert frame.get(AvatarFrame).avatar.key.source == "a"  # cached: instant
    assert preparer.calls == ["a", "b"]
    stage.stop()


def test_an_avatar_that_cannot_be_prepared_keeps_the_current_one(caplog):
    preparer = Preparer(fail={"bad"})
    library = AvatarLibrary(preparer)
    library.load(AvatarKey("a"))
    library.request(AvatarKey("bad"))
    library.wait(30)
    library.request(AvatarKey("bad"))  # not retried until its version changes
    library.wait(30)
    assert library.current is not None and library.current.key.source == "a"
    assert "no face in bad" in library.failures[AvatarKey("bad")]
    assert preparer.calls == ["a", "bad"]
    assert "keeping the current one" in caplog.text
    library.request(AvatarKey("bad", version=1))
    library.wait(30)
    assert preparer.calls == ["a", "bad", "bad"]
    library.close()


def test_start_without_any_avatar_fails_clearly():
    stage = AvatarStage(SettingsBox(LiveSettings()), Preparer())
    with pytest.raises(ValueError, match="--avatar"):
        stage.start()


# --------------------------------------------------------------------------- streams


def test_the_consumer_never_reads_before_the_producers_event():
    producer, consumer = CpuStream(), CpuStream()
    generate = GenerateStage(generate_engine(), consumer, "vicoface")
    coeffs = torch.zeros(1, M)
    ready = producer.new_event()  # not recorded yet: the producer is still "working"
    frame = Frame(0, 0, np.zeros((4, 4, 3), np.uint8))
    frame.put(DriverMotion(coeffs, ready))
    frame.put(AvatarFrame(LiveSettings(mode=MotionMode.ABSOLUTE), fake_avatar(AvatarKey("a"))))
    worker = threading.Thread(target=generate.process, args=(frame,))
    worker.start()
    worker.join(0.2)
    assert worker.is_alive()  # blocked on the event, not computing with zeros
    coeffs.fill_(0.25)  # the producer's work, then its record
    producer.record(ready)
    worker.join(30)
    assert torch.allclose(alphas_of([None, None, None, generate])[0], torch.full((M,), 0.25))


def test_each_stage_records_the_event_its_consumer_waits_on():
    stages = avatar_path(box())
    frames = run_frames(stages, 2)
    for frame in frames:
        assert frame.get(DriverMotion).ready.recorded
        assert frame.get(AvatarRender).ready.recorded


def test_engines_without_the_needed_io_are_rejected_before_the_first_frame():
    with pytest.raises(EngineIOError, match="needs inputs"):
        DriverMotionStage(generate_engine(), CpuStream())
    with pytest.raises(EngineIOError, match="MotionGraph"):
        GenerateStage(motion_engine(), CpuStream(), "vicoface")


@pytest.mark.needs_cuda
def test_the_same_stages_run_on_cuda_streams():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: torch.cuda.is_available() is False")
    device = torch.device("cuda", 0)
    motion = TorchEngine(FakeMotion(), motion_engine().inputs, motion_engine().outputs,
                         device=device)
    generate = TorchEngine(FakeGenerate(), generate_engine().inputs, generate_engine().outputs,
                           device=device)
    settings = box(output=OutputMode.SIDE_BY_SIDE)

    def on_cuda(key):
        avatar = fake_avatar(key)
        return PreparedAvatar(avatar.key, avatar.portrait.to(device), avatar.crop_affine,
                              Avatar(avatar.model.latent.to(device),
                                     tuple(f.to(device) for f in avatar.model.feats),
                                     avatar.model.coeffs.to(device), MOTION_DIM),
                              {k: v.to(device) for k, v in avatar.feeds.items()},
                              avatar.rest.to(device))

    stages = [ScriptedFace(), AvatarStage(settings, on_cuda),
              DriverMotionStage(motion, CudaStream(device), crop_on_device=True),
              GenerateStage(generate, CudaStream(device), "vicoface"),
              CompositeStage(CudaStream(device))]
    frames = run_frames(stages, 3, mode=RunMode.LIVE)
    assert frames and frames[-1].image.shape == (FRAME[1], 2 * FRAME[0], 3)
