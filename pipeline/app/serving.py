"""Assemble what ``vicocam serve`` serves: one model, its own stages for every peer.

`open_avatar_service` loads the weights and engines once (`ModelBundle`),
prepares the default avatar (so a portrait without a face fails the start,
not the first call) and returns the per-session `SessionFactory` plus the
`LiveSettings` every session starts with. Which engines sessions may share
is decided and documented in `stages.reenact.shared_sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.app.avatar_run import DEFAULT_AVATAR
from stages.reenact.build import AvatarPathConfig
from stages.reenact.live_settings import AvatarKey, LiveSettings, OutputMode
from stages.reenact.person import avatar_loaders
from stages.reenact.shared_sessions import SessionFactory, session_factory
from trt_engines.batching import BatchConfig
from trt_engines.bundle import ModelBundle, ModelSpec, open_bundle


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The model every session of ``vicocam serve`` runs.

    Attributes:
        model: the model and its engines (`ModelBundle.trained` says whether
            the weights are trained).
        avatar: the portrait a session starts with (a picture path, or
            ``person:N`` for a held-out synthetic person).
        output: the output mode a session starts with.
        path: fixed settings of each session's avatar path.
        batching: how the engine calls of all sessions are batched
            (`trt_engines.batching`); ``None`` = each session calls the
            engines itself.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    avatar: str = DEFAULT_AVATAR
    output: OutputMode = OutputMode.PASTE
    path: AvatarPathConfig = field(default_factory=AvatarPathConfig)
    batching: BatchConfig | None = field(default_factory=BatchConfig)


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


def open_avatar_service(config: ServeConfig,
                        bundle: ModelBundle | None = None) -> AvatarService:
    """Load the model (unless ``bundle`` is given) and prepare the default avatar.

    Raises `ValueError`/`OSError` for a bad checkpoint or configuration and
    whatever avatar preparation raises for a portrait without a face; a
    bundle opened here is closed again on failure.
    """
    owned = bundle is None
    bundle = bundle or open_bundle(config.model)
    avatar = AvatarKey(config.avatar)
    factory = session_factory(bundle, config.path, loaders=avatar_loaders(), initial=avatar,
                              engines=config.model, batching=config.batching)
    try:
        factory.prepare(avatar)
    except Exception:
        if owned:
            bundle.close()
        raise
    return AvatarService(factory, LiveSettings(avatar=avatar, output=config.output))
