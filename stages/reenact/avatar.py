"""Avatars: a portrait detected, cropped and encoded once, then reused on every frame.

`AvatarPreparer` turns an `AvatarKey` into a `PreparedAvatar`: it loads the
portrait (a picture file, or anything a registered `PortraitLoader`
understands), finds and crops the face with the face package (or takes the
crop the loader already knows), encodes the crop once (latent, encoder
features and coefficients cached on the compute device) and renders the
avatar's rest picture once.

`AvatarLibrary` keeps the avatar the graph shows. Switching avatars prepares
the new one on the library's own worker thread, off the frame path, and then
swaps one reference: a frame sees the old avatar or the new one, never half
of either. A portrait that cannot be prepared (no face, unreadable file) is
reported and the current avatar stays.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from networks.avatar import Avatar, Reenactor
from pipeline.frame import Image, check_image
from stages.face.crop import CropConfig, crop_affine, warp_crop
from stages.face.detector import DetectorConfig, FaceDetector, create_detector
from stages.face.stage import prepare_portrait
from stages.face.types import Affine, CropBox
from stages.io.image import load_rgb
from stages.reenact.live_settings import AvatarKey
from stages.reenact.tensors import image_to_tensor, to_unit

log = logging.getLogger(__name__)

RestPicture = Literal["reconstruction", "portrait"]


@dataclass(frozen=True, slots=True, eq=False)
class Portrait:
    """A loaded portrait and, when its loader knows it, the face crop window.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        crop: the crop window in ``image`` pixels, or ``None`` to detect the
            face (synthetic portraits know theirs from the renderer).
    """

    image: Image
    crop: CropBox | None = None


PortraitLoader = Callable[[str], Portrait]
"""Loads the portrait named by the text after ``name:`` in an `AvatarKey` source."""


def load_picture(path: str) -> Portrait:
    """The default loader: a picture file, face found by detection."""
    return Portrait(load_rgb(path))


@dataclass(frozen=True, slots=True, eq=False)
class PreparedAvatar:
    """One avatar, ready to render (everything on the compute device).

    Attributes:
        key: what was prepared.
        portrait: ``[1, 3, H, W]`` uint8, the portrait (at most
            `AvatarConfig.max_side` pixels a side).
        crop_affine: ``(2, 3)`` matrix mapping portrait pixels to crop pixels.
        model: the encoded avatar: latent ``[1, style]``, features, coefficients ``[1, M]``.
        feeds: the generate engine's per-avatar inputs (``latent``, ``feat_k``).
        rest: ``[1, 3, S, S]`` float in ``[-1, 1]``: what is shown with no
            driving face (the self-reconstruction or the portrait crop).
    """

    key: AvatarKey
    portrait: Tensor
    crop_affine: Affine
    model: Avatar
    feeds: Mapping[str, Tensor]
    rest: Tensor

    @property
    def size(self) -> int:
        """The model's crop side ``S``."""
        return int(self.rest.shape[-1])


@dataclass(frozen=True, slots=True)
class AvatarConfig:
    """How avatars are prepared.

    Attributes:
        crop_scale: crop side over the face size (ViCoFace: 1.6).
        max_side: portraits are downscaled to at most this many pixels a
            side once, at load (the output is never larger).
        rest: the picture shown with no driving face: ``"reconstruction"``
            (the avatar rendered with its own coefficients: seamless with
            the live output) or ``"portrait"`` (the portrait's own crop).
        detector: the detector that finds the face in a portrait.
    """

    crop_scale: float = 1.6
    max_side: int = 1024
    rest: RestPicture = "reconstruction"
    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(max_side=1024))

    def __post_init__(self) -> None:
        if self.rest not in ("reconstruction", "portrait"):
            raise ValueError(f"rest must be 'reconstruction' or 'portrait', got {self.rest!r}")
        if self.max_side < 64:
            raise ValueError(f"max_side must be >= 64 pixels, got {self.max_side}")


class AvatarPreparer:
    """Builds `PreparedAvatar`s for one model on one device (see the module docstring).

    Args:
        reenactor: the model's inference front end (encodes the portrait).
        device: where the graph computes; the cached tensors are moved there.
        config: preparation settings.
        loaders: portrait loaders by name: a source ``name:arg`` uses
            ``loaders[name](arg)``; anything else is a picture path.
        detector: a loaded face detector to reuse (built on first use otherwise).
    """

    def __init__(
        self,
        reenactor: Reenactor,
        device: torch.device,
        config: AvatarConfig | None = None,
        loaders: Mapping[str, PortraitLoader] | None = None,
        detector: FaceDetector | None = None,
    ) -> None:
        self.reenactor = reenactor
        self.device = device
        self.config = config or AvatarConfig()
        self.loaders = dict(loaders or {})
        self._detector = detector

    def __call__(self, key: AvatarKey) -> PreparedAvatar:
        if key.image is not None:
            portrait = _shrink(Portrait(key.image), self.config.max_side)
        else:
            portrait = self.load(key.source)
        image, affine, crop = self._crop(portrait)
        model = self._encode(crop)
        rest = self._rest(model, crop)
        feeds = {"latent": model.latent, **{f"feat_{k}": f for k, f in enumerate(model.feats)}}
        tensor = image_to_tensor(image).to(self.device)
        if self.device.type == "cuda":
            # Published to stages on other streams: the copies must be finished first.
            torch.cuda.synchronize(self.device)
        return PreparedAvatar(key, tensor, affine, model, feeds, rest)

    def load(self, source: str) -> Portrait:
        """The portrait named by ``source`` (a registered ``name:arg`` or a picture path)."""
        name, sep, arg = source.partition(":")
        loader = self.loaders.get(name) if sep else None
        portrait = loader(arg) if loader is not None else load_picture(source)
        return _shrink(portrait, self.config.max_side)

    def _crop(self, portrait: Portrait) -> tuple[Image, Affine, Image]:
        size = self.reenactor.config.size
        crop_config = CropConfig(size=size, scale=self.config.crop_scale)
        if portrait.crop is not None:
            box = portrait.crop
            return portrait.image, crop_affine(box, size), warp_crop(portrait.image, box,
                                                                      crop_config)
        if self._detector is None:
            self._detector = create_detector(self.config.detector)
        face = prepare_portrait(portrait.image, crop_config, self._detector)
        if face.affine is None or face.image is None:
            raise RuntimeError("prepare_portrait returned a crop without an affine or image")
        return portrait.image, face.affine, face.image

    def _encode(self, crop: Image) -> Avatar:
        model_input = to_unit(image_to_tensor(crop))  # [1, 3, S, S] in [-1, 1]
        avatar = self.reenactor.prepare_avatar(model_input)
        return Avatar(
            latent=avatar.latent.to(self.device).contiguous(),
            feats=tuple(f.to(self.device).contiguous() for f in avatar.feats),
            coeffs=avatar.coeffs.to(self.device).contiguous(),
            motion_dim=avatar.motion_dim,
        )

    def _rest(self, model: Avatar, crop: Image) -> Tensor:
        if self.config.rest == "portrait":
            return to_unit(image_to_tensor(crop)).to(self.device)
        with torch.inference_mode():
            rest = self.reenactor.reconstruct(model)
        return rest.to(self.device).float()


def _shrink(portrait: Portrait, max_side: int) -> Portrait:
    image = check_image(portrait.image, what="portrait")
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return portrait
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    crop = portrait.crop
    if crop is not None:
        crop = CropBox(crop.cx * size[0] / w, crop.cy * size[1] / h, crop.side * scale)
    return Portrait(np.asarray(small, dtype=np.uint8), crop)


class AvatarLibrary:
    """The avatar the graph shows, switched atomically (see the module docstring).

    Args:
        prepare: builds a `PreparedAvatar` (an `AvatarPreparer`).
        keep: prepared avatars kept for instant switching back (LRU).
    """

    def __init__(self, prepare: Callable[[AvatarKey], PreparedAvatar], keep: int = 4) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._prepare = prepare
        self._keep = keep
        self._cache: OrderedDict[AvatarKey, PreparedAvatar] = OrderedDict()
        self._current: PreparedAvatar | None = None
        self._pending: Future[None] | None = None
        self._wanted: AvatarKey | None = None
        self._failed: dict[AvatarKey, str] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def current(self) -> PreparedAvatar | None:
        """The avatar to render now (a single reference read)."""
        return self._current

    @property
    def failures(self) -> dict[AvatarKey, str]:
        """Avatars that could not be prepared, with the reason."""
        with self._lock:
            return dict(self._failed)

    def load(self, key: AvatarKey) -> PreparedAvatar:
        """Prepare ``key`` now, on the calling thread, and show it (for start-up)."""
        avatar = self._cache.get(key) or self._prepare(key)
        self._install(avatar)
        return avatar

    def request(self, key: AvatarKey) -> None:
        """Show ``key`` once it is prepared; returns at once. Idempotent.

        A cached avatar is shown immediately. Otherwise the preparation is
        queued on the library's worker thread; a newer request supersedes an
        older one that has not started. Failures are logged and kept in
        `failures`; the current avatar stays until a request succeeds.
        """
        with self._lock:
            if self._wanted == key or key in self._failed:
                return
            self._wanted = key
            cached = self._cache.get(key)
        if cached is not None:
            self._install(cached)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="vicocam-avatar")
        self._pending = self._executor.submit(self._prepare_in_background, key)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the last requested preparation finished (tests, shutdown)."""
        pending = self._pending
        if pending is not None:
            pending.result(timeout)

    def close(self) -> None:
        """Stop the worker thread (queued preparations are dropped)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _prepare_in_background(self, key: AvatarKey) -> None:
        with self._lock:
            if self._wanted != key:
                return  # superseded before it started
        try:
            avatar = self._prepare(key)
        except Exception as exc:
            with self._lock:
                self._failed[key] = f"{type(exc).__name__}: {exc}"
                if self._wanted == key and self._current is not None:
                    self._wanted = self._current.key
            log.warning("cannot switch to avatar %r: %s; keeping the current one", key.source, exc)
            return
        with self._lock:
            if self._wanted != key:
                self._remember(avatar)
                return
        self._install(avatar)

    def _install(self, avatar: PreparedAvatar) -> None:
        with self._lock:
            self._remember(avatar)
            self._wanted = avatar.key
            self._current = avatar

    def _remember(self, avatar: PreparedAvatar) -> None:
        self._cache[avatar.key] = avatar
        self._cache.move_to_end(avatar.key)
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)
