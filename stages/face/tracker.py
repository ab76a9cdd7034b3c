"""Face tracking for a live camera: cheap per-frame tracking, full search to (re)acquire.

The full-frame detector runs at a much lower rate than the frames: only to
acquire a face (at start, after the face was lost, after `FaceTracker.select`),
and then at most every ``search_interval_s``. In between, the detector runs
only on a square region around the last measured box (``roi_scale`` face
sizes), resampled to ``roi_input`` pixels: about 2.4 ms for RetinaFace on one
core against 15-23 ms for a 640 x 480 frame. The region stays put while the
face sits well inside it, so a still face is measured on an unchanged
sampling grid and gives an unchanged box.

Region detection on every frame, or optical flow between detections? Both
were measured with ``python -m benchmarks.track`` (moving canvas built from
the shared clips): region detection on every frame gave a median crop-centre
error of 0.022 face sizes and a still jitter of 0.02 output pixels; region
detection on every 3rd frame with Lucas-Kanade between (``detect_every=3``,
`stages.face.flow`) gave 0.024 and 0.06, and saves about 1.5 ms per frame
on average (flow costs about 0.6-1 ms with the grey conversion). The default
detects on every frame: the saving is small next to the generator, while a
detection on every frame re-measures the box (flow drifts on out-of-plane
head turns, and cannot tell that the face has gone), keeps the detector's
box convention on every crop (ViCoFace's crop rule is defined on RetinaFace
boxes) and gives fresh keypoints. ``detect_every`` stays available for
machines where those 1.5 ms matter.

Every measured box, including the one that acquires a face, comes from the
same region pipeline, so the crop does not jump when the tracker switches
from the full-frame search (run on a downscaled frame) to region tracking.

The crop window (centre and side) is smoothed by One-Euro filters driven by
the frame's capture time. With no face: the last crop is held for
``hold_seconds`` (HELD), then the face is reported LOST and the filters are
reset, so the next face found snaps into place instead of gliding in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.frame import Image, check_image
from stages.face.crop import CropConfig, crop_affine, crop_box_for, warp_crop
from stages.face.detector import DetectorConfig, FaceDetector, create_detector
from stages.face.flow import FlowConfig, Grey, propagate
from stages.face.smoothing import OneEuroConfig, OneEuroFilter
from stages.face.types import CropBox, Detection, FaceCrop, Point, TrackStatus, invert_affine


@dataclass(frozen=True, slots=True)
class FaceTrackerConfig:
    """Settings of a `FaceTracker`.

    Attributes:
        detector: which detector to build when none is passed in.
        crop: the crop rule and output size.
        hold_seconds: how long the last crop is held (HELD) after the face
            disappears before it is reported LOST.
        roi_scale: side of the tracking region over the face size
            ``(w + h) / 2``; the face may move this much minus one half face
            size between two frames and still be found without a full search.
        roi_input: the tracking region is resampled to this many pixels a side
            before detection (the face then spans about ``roi_input / roi_scale``).
        search_interval_s: when the region detection misses (face gone, or
            moved too far), the full-frame search runs at most this often
            (0: every frame). It bounds the cost of an empty room without
            delaying recovery noticeably.
        max_size_change: a region detection whose size differs from the last
            one by more than this factor is treated as a miss (a hand or a
            second face inside the region, not the tracked face).
        region_tolerance: the detection region is kept (not recentred) while
            the face centre stays within this many face sizes of its centre
            and the face size within this fraction of the size it was made for.
        center_filter: One-Euro filter of the crop centre; its speed unit is
            face sizes per second.
        size_filter: One-Euro filter of the crop side; speed unit as above.
        detect_every: run the region detection on every n-th frame and move
            the box by optical flow (`stages.face.flow`) on the frames between.
            1 (the default) detects on every frame; see the module docstring
            for the measurements behind that choice.
        flow: Lucas-Kanade settings, used when ``detect_every > 1``.
    """

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    hold_seconds: float = 1.0
    roi_scale: float = 2.4
    roi_input: int = 160
    search_interval_s: float = 0.2
    max_size_change: float = 1.6
    region_tolerance: float = 0.1
    center_filter: OneEuroConfig = field(
        default_factory=lambda: OneEuroConfig(min_cutoff=0.4, beta=10.0, d_cutoff=0.5)
    )
    size_filter: OneEuroConfig = field(
        default_factory=lambda: OneEuroConfig(min_cutoff=0.2, beta=2.0, d_cutoff=0.5)
    )
    detect_every: int = 1
    flow: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self) -> None:
        if self.hold_seconds < 0:
            raise ValueError(f"hold_seconds must be >= 0, got {self.hold_seconds}")
        if self.roi_scale < 1.2:
            raise ValueError(f"roi_scale must be >= 1.2 face sizes, got {self.roi_scale}")
        if self.roi_input < 32:
            raise ValueError(f"roi_input must be >= 32 pixels, got {self.roi_input}")
        if self.max_size_change <= 1:
            raise ValueError(f"max_size_change must be > 1, got {self.max_size_change}")
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")


@dataclass(slots=True)
class TrackerCounters:
    """How often each path ran; benchmarks and logs read these."""

    frames: int = 0
    full_searches: int = 0
    region_detections: int = 0
    region_misses: int = 0
    flow_steps: int = 0
    acquisitions: int = 0


@dataclass(slots=True)
class _Track:
    """What the tracker remembers about the face it follows."""

    last: Detection
    seen_s: float
    crop: CropBox
    since_detection: int = 0


class FaceTracker:
    """Follows one face through a stream and gives its smoothed ViCoFace crop.

    Call `update` once per frame with the frame's capture time in seconds
    (monotonic; the tracker never reads a clock). It never raises on a frame
    without a face; see `TrackStatus` for what it returns then. By default
    the largest face is followed; `select` picks the face nearest a point
    instead (e.g. where the user clicked), and `reset` starts over.
    """

    def __init__(
        self, config: FaceTrackerConfig | None = None, detector: FaceDetector | None = None
    ) -> None:
        self.config = config or FaceTrackerConfig()
        self.detector = detector if detector is not None else create_detector(self.config.detector)
        self.counters = TrackerCounters()
        self._center = OneEuroFilter(self.config.center_filter)
        self._side = OneEuroFilter(self.config.size_filter)
        self._track: _Track | None = None
        self._point: Point | None = None
        self._last_search_s = -math.inf
        self._pending_search = False
        self._pending_reset = False
        self._grey: Grey | None = None
        self._region: CropBox | None = None

    def select(self, point: Point | None) -> None:
        """Follow the face nearest ``point`` (frame pixels) from the next frame; ``None``: largest.

        Safe to call from another thread: it only sets attributes that the
        next `update` reads at its start.
        """
        self._point = point
        self._pending_search = True

    def reset(self) -> None:
        """Forget the tracked face; the next `update` searches the whole picture.

        Safe to call from another thread while `update` runs: it only raises a
        flag, and the next `update` does the reset before anything else.
        """
        self._pending_reset = True

    def _forget(self) -> None:
        self._track = None
        self._grey = None
        self._region = None
        self._center.reset()
        self._side.reset()
        self._last_search_s = -math.inf

    def update(self, image: Image, time_s: float) -> FaceCrop:
        """Track the face on ``image`` ``(H, W, 3)`` uint8 RGB captured at ``time_s``."""
        image = check_image(image)
        self.counters.frames += 1
        if self._pending_reset:
            self._pending_reset = False
            self._forget()
        previous_grey, self._grey = self._grey, self._grey_of(image)
        moved = self._flow(previous_grey)
        if moved is not None:
            return self._tracking(image, moved, time_s, fresh=False)
        detection = self._measure(image, time_s)
        if detection is not None:
            return self._tracking(image, detection, time_s, fresh=True)
        return self._no_face(image, time_s)

    def _grey_of(self, image: Image) -> Grey | None:
        if self.config.detect_every == 1:
            return None  # flow is off: skip the conversion
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)

    def _flow(self, previous_grey: Grey | None) -> Detection | None:
        """The box moved by optical flow when this frame is between two detections."""
        track = self._track
        if track is None or previous_grey is None or self._grey is None or self._pending_search:
            return None
        if track.since_detection + 1 >= self.config.detect_every:
            return None
        moved = propagate(previous_grey, self._grey, track.last, self.config.flow)
        if moved is not None:
            self.counters.flow_steps += 1
        return moved

    def _measure(self, image: Image, time_s: float) -> Detection | None:
        """The tracked face on this frame: region first, full search when that fails."""
        if self._pending_search:
            self._pending_search = False
            found = self._acquire(image, time_s)
            if found is not None:
                self._track = None  # a newly selected face: snap to it, do not glide
                return found
        if self._track is not None:
            found = self._track_region(image, self._track.last)
            if found is not None:
                return found
            self.counters.region_misses += 1
        if time_s - self._last_search_s < self.config.search_interval_s:
            return None
        found = self._acquire(image, time_s)
        if found is not None and self._track is not None:
            gap = math.hypot(
                found.center[0] - self._track.crop.cx, found.center[1] - self._track.crop.cy
            )
            if gap > found.size:
                self._track = None  # found somewhere else: snap rather than glide across
        return found

    def _acquire(self, image: Image, time_s: float) -> Detection | None:
        """Full-frame search, then a region pass on the pick so its box matches tracking."""
        self._last_search_s = time_s
        self.counters.full_searches += 1
        pick = choose_face(self.detector.detect(image), self._point)
        if pick is None:
            return None
        self.counters.acquisitions += 1
        self._region = None
        return self._track_region(image, pick) or pick

    def _track_region(self, image: Image, previous: Detection) -> Detection | None:
        """Detect in the region around ``previous``; the face matching it, or ``None``."""
        self.counters.region_detections += 1
        region = self._region_for(previous)
        faces = detect_in_region(self.detector, image, region, self.config.roi_input)
        found = match_face(faces, previous, self.config.max_size_change)
        self._region = region if found is not None else None
        return found

    def _region_for(self, face: Detection) -> CropBox:
        """The detection region for ``face``: the last one while the face sits well inside it.

        A fixed sampling grid measures a still face identically on identical
        pictures; recentring on every noisy box would shift the grid by
        fractions of a pixel and feed that back into the box as jitter.
        """
        wanted = CropBox(*face.center, side=self.config.roi_scale * face.size)
        last, tolerance = self._region, self.config.region_tolerance
        if last is None:
            return wanted
        moved = math.hypot(wanted.cx - last.cx, wanted.cy - last.cy) / face.size
        resized = abs(wanted.side / last.side - 1.0)
        return last if moved <= tolerance and resized <= tolerance else wanted

    def _tracking(
        self, image: Image, detection: Detection, time_s: float, *, fresh: bool
    ) -> FaceCrop:
        raw = crop_box_for(detection, self.config.crop.scale)
        if self._track is None:
            self._center.reset()
            self._side.reset()
        crop = self._smooth(raw, time_s)
        since = 0 if fresh or self._track is None else self._track.since_detection + 1
        self._track = _Track(last=detection, seen_s=time_s, crop=crop, since_detection=since)
        measured = detection if fresh else None
        return self._result(image, TrackStatus.TRACKING, crop, measured, time_s)

    def _smooth(self, raw: CropBox, time_s: float) -> CropBox:
        size = raw.side / self.config.crop.scale
        cx, cy = self._center((raw.cx, raw.cy), time_s, scale=size)
        (side,) = self._side(raw.side, time_s, scale=raw.side)
        return CropBox(cx=float(cx), cy=float(cy), side=float(side))

    def _no_face(self, image: Image, time_s: float) -> FaceCrop:
        track = self._track
        if track is not None and time_s - track.seen_s <= self.config.hold_seconds:
            return self._result(image, TrackStatus.HELD, track.crop, None, time_s)
        if track is not None:
            last_search = self._last_search_s
            self._forget()
            self._last_search_s = last_search  # losing the face is no reason to search sooner
        return FaceCrop(TrackStatus.LOST, None, None, None, None, time_s)

    def _result(
        self,
        image: Image,
        status: TrackStatus,
        crop: CropBox,
        detection: Detection | None,
        time_s: float,
    ) -> FaceCrop:
        affine = crop_affine(crop, self.config.crop.size)
        pixels = warp_crop(image, crop, self.config.crop)
        return FaceCrop(status, crop, affine, pixels, detection, time_s)


def choose_face(faces: list[Detection], point: Point | None = None) -> Detection | None:
    """The largest face, or with ``point`` the face whose centre is nearest to it."""
    if not faces:
        return None
    if point is None:
        return max(faces, key=lambda d: d.area)
    px, py = point
    return min(faces, key=lambda d: math.hypot(d.center[0] - px, d.center[1] - py))


def match_face(
    faces: list[Detection], previous: Detection, max_size_change: float
) -> Detection | None:
    """The face nearest ``previous`` with a plausible size change, or ``None``."""
    plausible = [
        d for d in faces if 1 / max_size_change <= d.size / previous.size <= max_size_change
    ]
    if not plausible:
        return None
    px, py = previous.center
    return min(plausible, key=lambda d: math.hypot(d.center[0] - px, d.center[1] - py))


def detect_in_region(
    detector: FaceDetector, image: Image, region: CropBox, size: int
) -> list[Detection]:
    """Run ``detector`` on ``region`` of ``image`` resampled to ``size`` squared.

    Returns the faces in frame pixels. The region is cut with a black border
    where it leaves the frame (a replicated border smears the frame edge into
    streaks that a detector can mistake for structure).
    """
    affine = crop_affine(region, size)
    patch = np.asarray(
        cv2.warpAffine(
            image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        ),
        dtype=np.uint8,
    )
    back = invert_affine(affine)
    return [map_detection(d, back) for d in detector.detect(patch)]


def map_detection(detection: Detection, affine: np.ndarray) -> Detection:
    """``detection`` with its box and keypoints mapped by an axis-aligned ``(2, 3)`` affine."""
    x0, y0 = _apply(affine, detection.box[0], detection.box[1])
    x1, y1 = _apply(affine, detection.box[2], detection.box[3])
    points = tuple(_apply(affine, x, y) for x, y in detection.keypoints)
    return Detection(box=(x0, y0, x1, y1), score=detection.score, keypoints=points)


def _apply(affine: np.ndarray, x: float, y: float) -> Point:
    return (
        float(affine[0, 0] * x + affine[0, 1] * y + affine[0, 2]),
        float(affine[1, 0] * x + affine[1, 1] * y + affine[1, 2]),
    )
