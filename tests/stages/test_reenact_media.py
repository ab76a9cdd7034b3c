"""The whole avatar path on a real clip and portrait, with a tiny model on two backends."""

import numpy as np
import pytest
import torch

from networks.avatar import Reenactor
from networks.config import custom_config
from networks.generator import Generator
from pipeline.control import SettingsBox
from pipeline.runtime import RunMode, RuntimeConfig, run_pipeline
from pipeline.stage import SourceFrame
from stages.io import NullSink, VideoFileSource, VideoFileSourceConfig
from stages.reenact.build import AvatarPathConfig, build_avatar_stages
from stages.reenact.live_settings import AvatarKey, LiveSettings, OutputMode
from stages.reenact.stages import CompositeConfig
from stages.reenact.types import AvatarRender
from trt_engines.backends import BackendName
from trt_engines.bundle import ModelBundle, ModelSpec, open_model_engines

FRAMES = 8
OUTPUT = (320, 240)


@pytest.fixture(scope="module")
def tiny_reenactor():
    torch.manual_seed(0)
    config = custom_config("vicoface-64s", name="vicoface-tiny", size=32,
                           channels=(16, 16, 16, 16), style_dim=32, motion_dim=6, id_dim=2)
    return Reenactor(Generator(config).eval())


def _run(media, reenactor, backend, cache_dir):
    motion, generate = open_model_engines(
        reenactor, ModelSpec(backend=BackendName(backend), cache_dir=cache_dir,
                             allow_fallback=False))
    bundle = ModelBundle(reenactor, motion, generate, f"tiny {backend}", trained=False)
    settings = SettingsBox(LiveSettings(avatar=AvatarKey(str(media / "monroe.png")),
                                        output=OutputMode.PASTE))
    config = AvatarPathConfig(composite=CompositeConfig(output_size=OUTPUT))
    stages = build_avatar_stages(settings, bundle, config)
    sink = _Keep()
    source = _FileTime(VideoFileSource(VideoFileSourceConfig(media / "driving1.mp4",
                                                              frames=FRAMES)))
    report = run_pipeline(source, [*stages, sink], RuntimeConfig(mode=RunMode.OFFLINE))
    bundle.close()
    return report, sink.frames


class _FileTime:
    """The clip with capture times from its timestamps, so runs see identical timing.

    (The tracker smooths with capture times; read times differ from run to run.)
    """

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name

    def open(self):
        return self.inner.open()

    def read(self):
        got = self.inner.read()
        if got is None:
            return None
        seconds = got.pts * got.time_base
        return SourceFrame(got.image, got.pts, got.time_base, round(seconds * 1e9) + 1)

    def close(self):
        self.inner.close()


class _Keep(NullSink):
    def __init__(self):
        super().__init__()
        self.frames = []

    def process(self, frame):
        self.frames.append(frame)
        return super().process(frame)


def test_real_clip_through_torch_and_onnxruntime_engines(shared_media, tiny_reenactor, tmp_path):
    results = {}
    for backend in ("torch", "onnxruntime"):
        report, frames = _run(shared_media, tiny_reenactor, backend, tmp_path)
        assert report.metrics.frames_failed == 0
        assert len(frames) == FRAMES
        assert all(f.image.shape == (OUTPUT[1], OUTPUT[0], 3) for f in frames)
        assert sum(not f.get(AvatarRender).at_rest for f in frames) >= FRAMES - 1  # face found
        results[backend] = np.stack([f.image for f in frames]).astype(int)
    # Stages never branch on the backend: the two engines give the same pictures.
    diff = np.abs(results["torch"] - results["onnxruntime"])
    assert diff.max() <= 2 and diff.mean() < 0.01
    # The portrait (256 px, fitted into 240 rows) is untouched away from the face.
    corner = results["torch"][:, :20, 40:60]
    assert np.all(corner == corner[0])


def test_the_preparer_takes_a_file_or_a_picture_in_memory(shared_media, tiny_reenactor):
    from stages.face.stage import NoFaceError
    from stages.io.image import load_rgb
    from stages.reenact.avatar import AvatarPreparer

    path = shared_media / "monroe.png"
    preparer = AvatarPreparer(tiny_reenactor, torch.device("cpu"))
    from_file = preparer(AvatarKey(str(path)))
    uploaded = preparer(AvatarKey("upload:monroe", image=load_rgb(path)))
    assert np.allclose(from_file.crop_affine, uploaded.crop_affine)
    assert from_file.portrait.shape == (1, 3, 256, 256)
    assert from_file.rest.shape == (1, 3, 32, 32)
    assert set(from_file.feeds) == {"latent", "feat_0", "feat_1", "feat_2"}
    # The crop is centred on the face: the portrait's middle third, give or take.
    affine = from_file.crop_affine
    centre = np.linalg.solve(affine[:, :2], [15.5, 15.5] - affine[:, 2])
    assert 256 / 3 < centre[0] < 2 * 256 / 3 and 256 / 4 < centre[1] < 3 * 256 / 4
    with pytest.raises(NoFaceError, match="no face found"):
        preparer(AvatarKey("upload:wall", image=np.full((128, 128, 3), 90, np.uint8)))
