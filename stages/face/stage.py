"""The face-track stage of the live graph, and the still-portrait crop for the avatar."""

from __future__ import annotations

from typing import ClassVar

from pipeline.frame import Frame, Image, check_image
from pipeline.stage import StageBase
from stages.face.crop import CropConfig, crop_affine, crop_box_for, warp_crop
from stages.face.detector import DetectorConfig, FaceDetector, create_detector
from stages.face.tracker import FaceTracker, FaceTrackerConfig, choose_face
from stages.face.types import FaceCrop, Point, TrackStatus


class FaceTrackStage(StageBase):
    """Finds and follows the driving face; stores a `FaceCrop` on every frame.

    Blocking (runs in a worker thread). The detector is loaded in
    `start`, so a missing detector package fails before the first frame. Time
    is the source's own clock: the frame's ``pts`` (a camera's capture time, a
    file's media time, an RTP timestamp), else its capture time. Holding and
    smoothing so follow the source, not the moment a late frame happens to be
    processed, and an offline render, which reads frames as fast as it can,
    smooths exactly as at the source's rate: the same every time.

    Control (out of band, from any thread): `select` follows the face nearest
    a point, `reset` forgets the current face.
    """

    name = "face_track"
    produces: ClassVar[frozenset[type]] = frozenset({FaceCrop})

    def __init__(
        self, config: FaceTrackerConfig | None = None, detector: FaceDetector | None = None
    ) -> None:
        self.config = config or FaceTrackerConfig()
        self._detector = detector
        self._tracker: FaceTracker | None = None

    def start(self) -> None:
        if self._tracker is None:
            self._tracker = FaceTracker(self.config, self._detector)

    def process(self, frame: Frame) -> Frame:
        if self._tracker is None:
            raise RuntimeError(f"stage {self.name!r} processed a frame before start()")
        media = frame.pts_seconds
        when = media if media is not None else frame.capture_ns / 1e9
        frame.put(self._tracker.update(frame.image, when))
        return frame

    def select(self, point: Point | None) -> None:
        """Follow the face nearest ``point`` (frame pixels); ``None`` returns to the largest."""
        if self._tracker is not None:
            self._tracker.select(point)

    def reset(self) -> None:
        if self._tracker is not None:
            self._tracker.reset()


class NoFaceError(ValueError):
    """A still portrait in which no face was found."""


def prepare_portrait(
    image: Image,
    crop: CropConfig | None = None,
    detector: FaceDetector | None = None,
    point: Point | None = None,
) -> FaceCrop:
    """Detect the face of a still portrait once and cut ViCoFace's crop of it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB portrait.
        crop: crop rule and size (the model's).
        detector: reuse a loaded detector; by default RetinaFace is built.
        point: pick the face nearest this point instead of the largest.

    Returns:
        A TRACKING `FaceCrop` (time 0) whose ``image`` is ``(size, size, 3)``.

    Raises:
        NoFaceError: no face was found; the message says what to do.
    """
    image = check_image(image, what="portrait")
    crop = crop or CropConfig()
    # A portrait is detected once: full resolution up to 1024 px, as close to
    # ViCoFace's own full-resolution detection as is cheap.
    detector = detector or create_detector(DetectorConfig(max_side=1024))
    face = choose_face(detector.detect(image), point)
    if face is None:
        raise NoFaceError(
            "no face found in the portrait; use a picture where one face is clearly "
            "visible, roughly frontal and at least 64 pixels wide"
        )
    box = crop_box_for(face, crop.scale)
    affine = crop_affine(box, crop.size)
    return FaceCrop(TrackStatus.TRACKING, box, affine, warp_crop(image, box, crop), face, 0.0)
