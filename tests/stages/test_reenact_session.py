"""The per-session factory: a peer's settings box drives the avatar path's settings."""

from dataclasses import dataclass

import numpy as np
import torch

from networks.avatar import Reenactor
from networks.config import custom_config
from networks.generator import Generator
from pipeline.control import SettingsBox
from stages.reenact.model import ModelBundle, torch_engines
from stages.reenact.session import session_factory
from stages.reenact.settings import AvatarKey, LiveSettings, OutputMode
from stages.reenact.stages import AvatarStage


@dataclass(frozen=True)
class Upload:
    image: np.ndarray
    sha256: str


@dataclass(frozen=True)
class PeerSettings:
    avatar: Upload | None = None
    strength: float = 1.0
    reset_count: int = 0


def _bundle():
    config = custom_config("vicoface-64s", name="vicoface-tiny", size=16,
                           channels=(8, 8, 8), style_dim=16, motion_dim=4, id_dim=2)
    reenactor = Reenactor(Generator(config).eval())
    motion, generate = torch_engines(reenactor, torch.device("cpu"))
    return ModelBundle(reenactor, motion, generate, "tiny", trained=False)


def _avatar_stage(stages):
    return next(s for s in stages if isinstance(s, AvatarStage))


def test_a_peers_settings_are_mirrored_whole_into_live_settings():
    factory = session_factory(_bundle(), AvatarKey("synthetic:1"))
    peer = SettingsBox(PeerSettings())
    stages = factory(peer)
    assert [s.name for s in stages] == ["face_track", "avatar", "motion", "generate", "composite"]
    live = _avatar_stage(stages).settings
    assert live.get() == LiveSettings(avatar=AvatarKey("synthetic:1"), output=OutputMode.PASTE)
    picture = np.zeros((8, 8, 3), np.uint8)
    peer.set(PeerSettings(Upload(picture, "abc"), strength=0.5, reset_count=2))
    now = live.get()
    assert now.avatar == AvatarKey("upload:abc") and now.avatar.image is picture
    assert (now.strength, now.reset_count, now.output) == (0.5, 2, OutputMode.PASTE)
    peer.update(strength=1.5)
    assert live.get().avatar == AvatarKey("upload:abc") and live.get().strength == 1.5


def test_each_session_gets_its_own_stages_and_a_live_box_is_used_as_is():
    factory = session_factory(_bundle(), AvatarKey("synthetic:1"))
    box = SettingsBox(LiveSettings(avatar=AvatarKey("a.png")))
    first, second = factory(box), factory(box)
    assert _avatar_stage(first).settings is box
    assert all(a is not b for a, b in zip(first, second, strict=True))
