"""The model behind `vicocam serve`: opened once, checked at start; the stamp relay."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from networks.avatar import Reenactor
from networks.config import custom_config
from networks.generator import Generator
from pipeline.app.serving import ServeConfig, open_avatar_service
from pipeline.control import SettingsBox
from pipeline.frame import Frame
from pipeline.stage import Stage, StageBase
from stages.reenact.live_settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode
from stages.stamp import read_stamp, stamp
from stages.webrtc.stamp_relay import ReadStamp, StampRelay, WriteStamp
from trt_engines.bundle import ModelBundle, torch_engines


class Repaint(StageBase):
    """Stands in for the avatar path: a new picture that keeps no stamp."""

    name = "repaint"

    def process(self, frame: Frame) -> Frame:
        frame.image = np.full_like(frame.image, 77)
        return frame


def repaint_factory(settings: LiveSettingsBox) -> list[Stage]:
    return [Repaint()]


def _frame(index: int) -> Frame:
    image = np.full((120, 160, 3), 30, np.uint8)
    stamp(image, index)
    return Frame(seq=index, capture_ns=0, image=image)


def test_the_relay_carries_the_camera_stamp_onto_the_new_picture():
    stages = StampRelay(repaint_factory)(SettingsBox(LiveSettings()))
    assert [type(s) for s in stages] == [ReadStamp, Repaint, WriteStamp]
    for index in (0, 41, 1234):
        frame = _frame(index)
        for stage in stages:
            frame = stage.process(frame)
        assert read_stamp(frame.image) == index
        assert frame.image[-1, -1].tolist() == [77, 77, 77]  # the rest is the stage's picture


def test_a_frame_without_a_stamp_goes_out_unstamped():
    stages = StampRelay(repaint_factory)(SettingsBox(LiveSettings()))
    frame = Frame(seq=0, capture_ns=0, image=np.full((120, 160, 3), 30, np.uint8))
    for stage in stages:
        frame = stage.process(frame)
    assert read_stamp(frame.image) is None


def _tiny_bundle() -> ModelBundle:
    config = custom_config("vicoface-64s", name="vicoface-tiny", size=16,
                           channels=(8, 8, 8), style_dim=16, motion_dim=4, id_dim=2)
    reenactor = Reenactor(Generator(config).eval())
    motion, generate = torch_engines(reenactor, torch.device("cpu"))
    return ModelBundle(reenactor, motion, generate, "tiny", trained=False)


def test_the_service_prepares_the_default_avatar_once_at_start(shared_media):
    bundle = _tiny_bundle()
    portrait = str(shared_media / "monroe.png")
    service = open_avatar_service(ServeConfig(avatar=portrait, output=OutputMode.CROP),
                                  bundle)
    assert service.bundle is bundle
    assert service.settings == LiveSettings(avatar=AvatarKey(portrait), output=OutputMode.CROP)
    assert len(service.factory.avatars) == 1
    stages = service.factory(SettingsBox(service.settings))
    # Serve batches by default: each session ends by leaving the engines' batchers.
    assert [s.name for s in stages][-2:] == ["composite", "release_engines"]
    assert service.factory.batchers is not None


def test_a_default_avatar_without_a_face_fails_the_start(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    bundle = _tiny_bundle()
    with pytest.raises(ValueError, match="face"):
        open_avatar_service(ServeConfig(avatar=str(blank)), bundle)
    bundle.motion.run({"driver": torch.zeros(1, 3, 16, 16)})  # a bundle passed in stays open
