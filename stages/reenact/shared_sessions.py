"""The avatar path per session: what a WebRTC server builds for each peer from one model.

`session_factory(bundle, ...)` returns a `SessionFactory`: called with a
session's own `LiveSettingsBox` (the same settings type the terminal keys of
``vicocam run`` write), it builds that session's avatar stages. The model is
loaded once and shared:

* the weights (`ModelBundle.reenactor`), the prepared avatars
  (`SharedAvatars`: each portrait is detected, cropped and encoded once for
  all sessions) and the face detector the trackers use (an ONNX Runtime
  session with its own threads and memory: one per session would be freed
  only with the session's last reference) are read-only once built;
* with batching (``batching``, what ``vicocam serve`` does by default) each
  engine is wrapped in one `EngineBatcher`: every session joins it and its
  stages call their own `BatchMember`, so the motion and generate requests
  of all sessions due at once become one engine call. Any backend goes
  through it, TensorRT included (one engine, one execution context: only
  the batcher calls it, one batch at a time);
* without batching the per-frame engines are shared when they say they may
  be (`Engine.shareable`: ONNX Runtime and torch engines, see
  `trt_engines.backends.SHAREABLE_BACKENDS`). A TensorRT engine returns views
  of its own buffers, valid until its next ``run``: with it each session
  opens its own engines (from the same exported graphs and engine cache) and
  closes them when it stops.

Everything per stream (tracker state, relative reference, avatar library,
device streams) is new in every call.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import ClassVar

from pipeline.frame import Frame
from pipeline.stage import Stage, StageBase
from stages.face.detector import create_detector
from stages.reenact.avatar import AvatarPreparer, PortraitLoader, PreparedAvatar
from stages.reenact.build import AvatarPathConfig, build_avatar_stages
from stages.reenact.live_settings import AvatarKey, LiveSettingsBox
from trt_engines.batching import BatchConfig, EngineBatcher
from trt_engines.bundle import ModelBundle, ModelSpec, open_model_engines
from trt_engines.engine import Engine


class SharedAvatars:
    """Prepares each avatar once for all sessions: a thread-safe LRU of `PreparedAvatar`.

    A prepared avatar is read-only (tensors on the compute device, synchronised
    before it is returned), so several sessions may render the same one. Two
    sessions asking for the same new avatar at once may both prepare it; the
    second result replaces the first, both are correct.

    Args:
        prepare: builds a `PreparedAvatar` (an `AvatarPreparer`).
        keep: avatars kept (uploads included), least recently used dropped first.
    """

    def __init__(self, prepare: Callable[[AvatarKey], PreparedAvatar], keep: int = 8) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._prepare = prepare
        self._keep = keep
        self._cache: OrderedDict[AvatarKey, PreparedAvatar] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, key: AvatarKey) -> PreparedAvatar:
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        avatar = self._prepare(key)  # slow: outside the lock, other keys go on
        with self._lock:
            self._cache[key] = avatar
            self._cache.move_to_end(key)
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        return avatar

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)


class ReleaseEngines(StageBase):
    """Passes frames on and closes a session's own engines (or leaves its batchers) at stop."""

    name = "release_engines"
    blocking: ClassVar[bool] = False  # nothing to compute

    def __init__(self, engines: tuple[Engine, ...]) -> None:
        self.engines = engines

    def process(self, frame: Frame) -> Frame:
        return frame

    def stop(self) -> None:
        for engine in self.engines:
            engine.close()


class SessionFactory:
    """Builds one session's avatar stages around its settings box (see the module docstring).

    Args:
        bundle: the model, loaded once.
        config: fixed settings of every session's avatar path.
        loaders: extra portrait loaders by name (``person`` ...).
        initial: the avatar a session starts with when its settings name none.
        engines: how to open a session's own engines when the bundle's
            engines cannot be shared (`ModelBundle.shareable`); ``None`` = the
            bundle's engines are shared whatever the backend.
        keep_avatars: prepared avatars kept for all sessions.
        batching: batch the engine calls of all sessions (`EngineBatcher`);
            ``None`` = every session calls the engines itself.
    """

    def __init__(self, bundle: ModelBundle, config: AvatarPathConfig | None = None, *,
                 loaders: Mapping[str, PortraitLoader] | None = None,
                 initial: AvatarKey | None = None, engines: ModelSpec | None = None,
                 keep_avatars: int = 8, batching: BatchConfig | None = None) -> None:
        self.bundle = bundle
        self.config = config or AvatarPathConfig()
        self.initial = initial
        self._engines = engines
        preparer = AvatarPreparer(bundle.reenactor, bundle.device, self.config.avatar, loaders)
        self.avatars = SharedAvatars(preparer, keep_avatars)
        self.detector = create_detector(self.config.tracker.detector)
        self.batchers: tuple[EngineBatcher, EngineBatcher] | None = None
        if batching is not None:
            self.batchers = (EngineBatcher(bundle.motion, batching),
                             EngineBatcher(bundle.generate, batching))

    @property
    def per_session_engines(self) -> bool:
        """Whether each session opens its own engines (an unshareable backend, no batching)."""
        return self.batchers is None and self._engines is not None and not self.bundle.shareable

    def prepare(self, key: AvatarKey) -> PreparedAvatar:
        """Prepare ``key`` now (e.g. the default avatar at server start, to fail early)."""
        return self.avatars(key)

    def __call__(self, settings: LiveSettingsBox) -> list[Stage]:
        engines = self._own_engines()
        if engines is None:
            return self._stages(settings, self.bundle)
        own = dataclasses.replace(self.bundle, motion=engines[0], generate=engines[1])
        return [*self._stages(settings, own), ReleaseEngines(engines)]

    def _own_engines(self) -> tuple[Engine, Engine] | None:
        """The session's batcher members, its own engines, or ``None``: the bundle's."""
        if self.batchers is not None:
            return self.batchers[0].join(), self.batchers[1].join()
        if not self.per_session_engines or self._engines is None:
            return None
        return open_model_engines(self.bundle.reenactor, self._engines)

    def _stages(self, settings: LiveSettingsBox, bundle: ModelBundle) -> list[Stage]:
        return build_avatar_stages(settings, bundle, self.config, preparer=self.avatars,
                                   initial=self.initial, detector=self.detector)


def session_factory(
    bundle: ModelBundle,
    config: AvatarPathConfig | None = None,
    *,
    loaders: Mapping[str, PortraitLoader] | None = None,
    initial: AvatarKey | None = None,
    engines: ModelSpec | None = None,
    batching: BatchConfig | None = None,
) -> SessionFactory:
    """A `SessionFactory` for ``bundle``: ``factory(settings_box) -> list[Stage]``."""
    return SessionFactory(bundle, config, loaders=loaders, initial=initial, engines=engines,
                          batching=batching)
