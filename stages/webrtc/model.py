"""The avatar model behind ``vicocam serve``: loaded once, its own stages for every peer.

`open_avatar_service` loads the weights and engines once (`ModelBundle`),
prepares the default avatar (so a portrait without a face fails the start,
not the first call) and returns the per-session `SessionFactory` plus the
`LiveSettings` every session starts with. Which engines sessions may share
is decided and documented in `stages.reenact.session`.

`StampRelay` is measuring equipment, not part of a call: it carries the frame
index stamped in the incoming picture (`stages.stamp`) over to the outgoing
one, so a browser can match a returned avatar frame to the camera frame that
drove it (the avatar itself does not keep the stamp band).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from pipeline.frame import Frame
from pipeline.stage import Stage, StageBase
from stages.reenact.app import DEFAULT_AVATAR, resolve_checkpoint
from stages.reenact.build import AvatarPathConfig
from stages.reenact.model import DEFAULT_RANDOM_CONFIG, EngineOptions, ModelBundle, open_bundle
from stages.reenact.session import SessionFactory, session_factory
from stages.reenact.settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode
from stages.reenact.synthetic import avatar_loaders
from stages.stamp import read_stamp, stamp
from stages.webrtc.session import StageFactory


@dataclass(frozen=True, slots=True)
class ServeModelConfig:
    """The model every session of ``vicocam serve`` runs.

    Attributes:
        checkpoint: model weights; ``None`` = the bundled demo model under
            ``networks/pretrained/``, or random weights of ``random_config``
            when there is none (`ModelBundle.trained` says so).
        random_config: the configuration built with random weights.
        engines: backend, device and threads of the per-frame engines.
        avatar: the portrait a session starts with (a picture path, or
            ``synthetic:N`` for a held-out synthetic person).
        output: the output mode a session starts with.
        path: fixed settings of each session's avatar path.
    """

    checkpoint: Path | None = None
    random_config: str = DEFAULT_RANDOM_CONFIG
    engines: EngineOptions = field(default_factory=EngineOptions)
    avatar: str = DEFAULT_AVATAR
    output: OutputMode = OutputMode.PASTE
    path: AvatarPathConfig = field(default_factory=AvatarPathConfig)


@dataclass(frozen=True, slots=True, eq=False)
class AvatarService:
    """A loaded model ready to serve peers.

    Attributes:
        factory: builds each session's stages around its settings box.
        settings: what every session's settings box starts as.
    """

    factory: SessionFactory
    settings: LiveSettings

    @property
    def bundle(self) -> ModelBundle:
        return self.factory.bundle

    def close(self) -> None:
        self.factory.bundle.close()


def open_avatar_service(config: ServeModelConfig,
                        bundle: ModelBundle | None = None) -> AvatarService:
    """Load the model (unless ``bundle`` is given) and prepare the default avatar.

    Raises `ValueError`/`OSError` for a bad checkpoint or configuration and
    whatever avatar preparation raises for a portrait without a face; a
    bundle opened here is closed again on failure.
    """
    owned = bundle is None
    if bundle is None:
        torch.set_num_threads(config.engines.threads)
        bundle = open_bundle(resolve_checkpoint(config.checkpoint), config.engines,
                             config.random_config)
    avatar = AvatarKey(config.avatar)
    factory = session_factory(bundle, config.path, loaders=avatar_loaders(), initial=avatar,
                              engines=config.engines)
    try:
        factory.prepare(avatar)
    except Exception:
        if owned:
            bundle.close()
        raise
    return AvatarService(factory, LiveSettings(avatar=avatar, output=config.output))


# --------------------------------------------------------------------------- stamp relay


@dataclass(frozen=True, slots=True)
class StampIndex:
    """The frame index read from the incoming picture (``None``: no readable stamp)."""

    index: int | None


class ReadStamp(StageBase):
    """Reads the stamped frame index of the incoming picture (`StampIndex`)."""

    name = "stamp_in"
    blocking: ClassVar[bool] = False  # 36 cell means: microseconds
    produces: ClassVar[frozenset[type]] = frozenset({StampIndex})

    def process(self, frame: Frame) -> Frame:
        frame.put(StampIndex(read_stamp(frame.image)))
        return frame


class WriteStamp(StageBase):
    """Stamps the outgoing picture with the index read on the way in."""

    name = "stamp_out"
    blocking: ClassVar[bool] = False
    needs: ClassVar[frozenset[type]] = frozenset({StampIndex})

    def process(self, frame: Frame) -> Frame:
        index = frame.get(StampIndex).index
        if index is not None:
            # A copy: the picture may be a buffer a stage still owns.
            image = np.array(frame.image, copy=True)
            stamp(image, index)
            frame.image = image
        return frame


class StampRelay:
    """A `StageFactory` around another: ``[ReadStamp, *inner, WriteStamp]``."""

    def __init__(self, inner: StageFactory) -> None:
        self.inner = inner

    def __call__(self, settings: LiveSettingsBox) -> list[Stage]:
        return [ReadStamp(), *self.inner(settings), WriteStamp()]
