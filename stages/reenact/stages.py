"""The stages of the avatar path: avatar, driver motion, generation, compositing.

Graph (each a blocking stage; the runtime deals them into one worker thread per core)::

    face_track -> avatar -> motion -> generate -> composite -> sink
    (FaceCrop)  (AvatarFrame) (DeviceFrame, DriverMotion) (AvatarRender) (frame.image)

Each compute stage owns a `DeviceStream` (passed in, never created here):
it waits on the ready-events of the results it reads, enqueues its work
with its stream current, and records an event on its output. On the CPU the
streams are the synchronous stand-in and the same code runs unchanged. The
only host copies are the upload of the driving picture (motion stage) and
the download of the finished canvas (composite stage).

No face (the tracker reports LOST): the motion stage stores no coefficients,
the generation stage shows the avatar's rest picture without running the
generator, and the next face found starts a fresh relative reference.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from networks.motion import MotionMode, compose_alpha, default_mode
from networks.reference import RelativeReference
from pipeline.frame import Frame
from pipeline.stage import StageBase
from stages.face.types import FaceCrop
from stages.reenact.avatar import AvatarLibrary, PreparedAvatar
from stages.reenact.composite import (
    PasteLayout,
    Size,
    feather_mask,
    paste,
    paste_layout,
    place_crop,
    place_frame,
    split_side_by_side,
)
from stages.reenact.live_settings import AvatarKey, LiveSettingsBox, OutputMode
from stages.reenact.tensors import (
    HostStaging,
    image_to_tensor,
    keep_for,
    new_canvas,
    to_unit,
    warp_crop,
)
from stages.reenact.types import AvatarFrame, AvatarRender, DeviceFrame, DriverMotion
from trt_engines.engine import Engine
from trt_engines.streams import DeviceStream


class EngineIOError(ValueError):
    """An engine does not have the inputs or outputs a stage needs."""


def _require_io(engine: Engine, inputs: set[str], outputs: set[str], role: str) -> None:
    have_in = {s.name for s in engine.inputs}
    have_out = {s.name for s in engine.outputs}
    if not inputs <= have_in or not outputs <= have_out:
        raise EngineIOError(
            f"the {role} engine {engine.name!r} takes {sorted(have_in)} and gives "
            f"{sorted(have_out)}; the {role} stage needs inputs {sorted(inputs)} and outputs "
            f"{sorted(outputs)}. Build it from networks.graphs (MotionGraph / GenerateGraph)."
        )


# --------------------------------------------------------------------------- avatar


class AvatarStage(StageBase):
    """Stores the frame's settings snapshot and current avatar (`AvatarFrame`).

    The snapshot taken here is what every later stage of this frame uses, so
    a settings change takes effect on the next frame to pass this stage. A
    new avatar in the settings is prepared (by ``preparer``, usually an
    `AvatarPreparer`) in the stage's `AvatarLibrary` on its own thread;
    frames keep the old avatar until the new one is ready. ``start``
    prepares the first avatar (the settings' avatar, or ``initial``) before
    the first frame, so a portrait without a face fails the run at start
    with the face package's message.
    """

    name = "avatar"
    produces: ClassVar[frozenset[type]] = frozenset({AvatarFrame})

    def __init__(self, settings: LiveSettingsBox,
                 preparer: Callable[[AvatarKey], PreparedAvatar],
                 initial: AvatarKey | None = None, keep: int = 4) -> None:
        self.settings = settings
        self.library = AvatarLibrary(preparer, keep=keep)
        self._initial = initial

    def start(self) -> None:
        key = self.settings.get().avatar or self._initial
        if key is None:
            raise ValueError("no avatar: give a portrait (--avatar PICTURE) in the live settings")
        self.library.load(key)

    def process(self, frame: Frame) -> Frame:
        settings = self.settings.get()
        if settings.avatar is not None:
            self.library.request(settings.avatar)
        avatar = self.library.current
        if avatar is None:
            raise RuntimeError(f"stage {self.name!r} processed a frame before start()")
        frame.put(AvatarFrame(settings, avatar))
        return frame

    def stop(self) -> None:
        self.library.close()


# --------------------------------------------------------------------------- motion


class DriverMotionStage(StageBase):
    """Uploads the driving picture and encodes the face crop into coefficients.

    Stores `DeviceFrame` (the picture on the device) and `DriverMotion`
    (``coeffs [1, M]``, or ``None`` when the tracker lost the face).

    Args:
        engine: input ``driver [B, 3, S, S]`` in ``[-1, 1]``, output ``coeffs``.
        stream: this stage's stream.
        crop_on_device: cut the crop from the uploaded picture with the
            crop's affine (on a GPU: no host-side crop); otherwise use the
            tracker's host crop (`FaceCrop.image`, free on the CPU).
    """

    name = "motion"
    needs: ClassVar[frozenset[type]] = frozenset({FaceCrop})
    produces: ClassVar[frozenset[type]] = frozenset({DeviceFrame, DriverMotion})

    def __init__(self, engine: Engine, stream: DeviceStream, crop_on_device: bool = False) -> None:
        _require_io(engine, {"driver"}, {"coeffs"}, "motion")
        self.engine = engine
        self.stream = stream
        self.crop_on_device = crop_on_device
        self.staging = HostStaging(stream.device)
        driver = next(s for s in engine.inputs if s.name == "driver")
        if driver.rank != 4 or driver.shape[-1] is None or driver.shape[-1] != driver.shape[-2]:
            raise EngineIOError(f"the motion engine's input must be [B, 3, S, S] with a fixed "
                                f"S, got {driver.describe()}")
        self.size = int(driver.shape[-1])

    def process(self, frame: Frame) -> Frame:
        face = frame.get(FaceCrop)
        with self.stream.activate():
            picture = self.staging.upload(frame.image)
            coeffs = self._encode(face, picture) if face.has_face else None
            ready = self.stream.record()
        frame.put(DeviceFrame(picture, ready))
        frame.put(DriverMotion(coeffs, ready))
        return frame

    def _encode(self, face: FaceCrop, picture: Tensor) -> Tensor:
        crop = self._crop(face, picture)
        # Engines may return views of reusable buffers: keep a copy of our own.
        return self.engine.run({"driver": crop})["coeffs"].clone()

    def _crop(self, face: FaceCrop, picture: Tensor) -> Tensor:
        """``[1, 3, S, S]`` float in ``[-1, 1]`` on the device."""
        if self.crop_on_device or face.image is None:
            if face.affine is None:
                raise ValueError("a face crop with a face must carry its affine")
            return warp_crop(picture, face.affine, self.size)
        if face.image.shape[:2] != (self.size, self.size):
            raise ValueError(
                f"the face crop is {face.image.shape[1]}x{face.image.shape[0]} but the model "
                f"takes {self.size}x{self.size}: build the tracker with CropConfig(size="
                f"{self.size})"
            )
        return to_unit(image_to_tensor(face.image)).to(self.stream.device, non_blocking=True)


# --------------------------------------------------------------------------- generation


class GenerateStage(StageBase):
    """Composes the rendered coefficients (B.2) and runs the generator: `AvatarRender`.

    Modes (`LiveSettings.mode`, ``None`` = the family's default): cross
    ``[a_d ; b_s]``, absolute ``[a_d ; b_d]``, relative
    ``[a_s + a_d - a_d0 ; b_s]`` with ``a_d0`` the reference frame; the
    strength scales the delta from the avatar's own coefficients. The
    engine takes one composed ``alpha``, so relative mode is summed in
    coefficient space: ViCoFace's order exactly, LIA's
    ``wa + (D(a_d) - D(a_d0)) + D(a_s)`` to float32 rounding (see
    `networks.motion.compose_alpha` for the measured difference). The
    reference and its reset rules belong to `RelativeReference` (first
    driven frame after start, a reset request, a mode change or a lost
    face); this stage only runs the engine on its stream.
    """

    name = "generate"
    needs: ClassVar[frozenset[type]] = frozenset({DriverMotion, AvatarFrame})
    produces: ClassVar[frozenset[type]] = frozenset({AvatarRender})

    def __init__(self, engine: Engine, stream: DeviceStream, family: str) -> None:
        _require_io(engine, {"latent", "alpha"}, {"image"}, "generate")
        self.engine = engine
        self.stream = stream
        self.family_mode = default_mode(family)
        self.reference = RelativeReference()

    def process(self, frame: Frame) -> Frame:
        motion = frame.get(DriverMotion)
        target = frame.get(AvatarFrame)
        mode = target.settings.mode or self.family_mode
        reference = self.reference.update(mode, target.settings.reset_count, motion.coeffs)
        if motion.coeffs is None or reference.coeffs is None:  # both or neither: no face
            frame.put(AvatarRender(target.avatar.rest, self.stream.record(), at_rest=True))
            return frame
        self.stream.wait(motion.ready)
        keep_for(motion.coeffs, self.stream)
        with self.stream.activate():
            alpha = self._compose(mode, motion.coeffs, reference.coeffs, target)
            image = self.engine.run({**target.avatar.feeds, "alpha": alpha})["image"].clone()
            ready = self.stream.record()
        frame.put(AvatarRender(image, ready, at_rest=False, reference_reset=reference.reset))
        return frame

    @staticmethod
    def _compose(mode: MotionMode, coeffs: Tensor, reference: Tensor,
                 target: AvatarFrame) -> Tensor:
        """``alpha [1, M]`` from the driver's and the reference's ``coeffs [1, M]``."""
        avatar = target.avatar.model
        return compose_alpha(mode, coeffs, avatar.coeffs, avatar.motion_dim, reference,
                             target.settings.strength).contiguous()


# --------------------------------------------------------------------------- compositing


@dataclass(frozen=True, slots=True)
class CompositeConfig:
    """How the output picture is laid out.

    Attributes:
        output_size: ``(width, height)`` of every output picture. ``None``
            fixes it from the first frame: the driving picture's size, twice
            as wide for side by side. It then stays fixed when the output mode
            changes (a sink or virtual camera needs one size).
        background: colour of letterbox bars.
        mask_margin: paste mask is 0 within this fraction of the crop side
            from the crop's edge.
        mask_feather: width of the mask's ramp, as a fraction of the crop side.
        layouts: paste layouts kept (one per avatar and region size).
    """

    output_size: Size | None = None
    background: tuple[int, int, int] = (0, 0, 0)
    mask_margin: float = 0.02
    mask_feather: float = 0.12
    layouts: int = 8

    def __post_init__(self) -> None:
        if self.output_size is not None and min(self.output_size) < 2:
            raise ValueError(f"output_size must be at least 2x2, got {self.output_size}")
        feather_mask(8, self.mask_margin, self.mask_feather)  # validates the fractions


class CompositeStage(StageBase):
    """Writes the output picture into ``frame.image`` per `LiveSettings.output`.

    crop: the generated crop scaled to fit; paste: the generated face pasted
    into the avatar portrait (feathered mask, untouched outside it);
    side by side: ``driver | paste``. Canvas and layouts are allocated once
    and reused.
    """

    name = "composite"
    needs: ClassVar[frozenset[type]] = frozenset({AvatarRender, AvatarFrame, DeviceFrame})

    def __init__(self, stream: DeviceStream, config: CompositeConfig | None = None) -> None:
        self.stream = stream
        self.config = config or CompositeConfig()
        self.staging = HostStaging(stream.device)
        self._canvas: Tensor | None = None
        self._layouts: OrderedDict[tuple[AvatarKey, Size], PasteLayout] = OrderedDict()
        self._mask: Tensor | None = None

    @property
    def output_size(self) -> Size | None:
        """The fixed output size, once known."""
        if self._canvas is None:
            return self.config.output_size
        return (int(self._canvas.shape[-1]), int(self._canvas.shape[-2]))

    def process(self, frame: Frame) -> Frame:
        render = frame.get(AvatarRender)
        target = frame.get(AvatarFrame)
        driver = frame.get(DeviceFrame)
        self.stream.wait(render.ready)
        self.stream.wait(driver.ready)
        keep_for(render.image, self.stream)
        keep_for(driver.image, self.stream)
        with self.stream.activate():
            canvas = self._canvas_for(frame, target.settings.output)
            self._draw(canvas, target, render.image, driver.image)
            frame.image = self.staging.download(canvas, self.stream.synchronize)
        return frame

    def _draw(self, canvas: Tensor, target: AvatarFrame, face: Tensor, driver: Tensor) -> None:
        mode = target.settings.output
        if mode is OutputMode.CROP:
            place_crop(face, canvas, self.config.background)
        elif mode is OutputMode.PASTE:
            self._paste(canvas, target.avatar, face)
        else:
            left, right = split_side_by_side(self.output_size or (0, 0))
            place_frame(driver, left.view(canvas), self.config.background)
            self._paste(right.view(canvas), target.avatar, face)

    def _paste(self, region: Tensor, avatar: PreparedAvatar, face: Tensor) -> None:
        size = (int(region.shape[-1]), int(region.shape[-2]))
        paste(self._layout(avatar, size), face, region)

    def _layout(self, avatar: PreparedAvatar, size: Size) -> PasteLayout:
        key = (avatar.key, size)
        layout = self._layouts.get(key)
        if layout is None:
            if self._mask is None or self._mask.shape[-1] != avatar.size:
                self._mask = feather_mask(avatar.size, self.config.mask_margin,
                                          self.config.mask_feather)
            layout = paste_layout(avatar.portrait, avatar.crop_affine, avatar.size, size,
                                  self._mask, self.config.background)
            self._layouts[key] = layout
            while len(self._layouts) > self.config.layouts:
                self._layouts.popitem(last=False)
        self._layouts.move_to_end(key)
        return layout

    def _canvas_for(self, frame: Frame, mode: OutputMode) -> Tensor:
        if self._canvas is None:
            w, h = self.config.output_size or _default_size(frame, mode)
            self._canvas = new_canvas((w, h), self.stream.device)
        return self._canvas


def _default_size(frame: Frame, mode: OutputMode) -> Size:
    h, w = frame.image.shape[:2]
    return (2 * w, h) if mode is OutputMode.SIDE_BY_SIDE else (w, h)

