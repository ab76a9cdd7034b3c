"""FaceTracker and FaceTrackStage on canvases composed from the shared portraits.

Time is injected (the frames' capture times); nothing here sleeps or times.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.frame import Frame
from stages.face.crop import CropConfig
from stages.face.detector import DetectorConfig, create_detector
from stages.face.stage import FaceTrackStage, NoFaceError, prepare_portrait
from stages.face.tracker import FaceTracker, FaceTrackerConfig, choose_face, match_face
from stages.face.types import Detection, FaceCrop, TrackStatus

CANVAS_HW = (360, 480)
DT = 1 / 25


@pytest.fixture(scope="module")
def detector():
    return create_detector(DetectorConfig())


def read_rgb(path: Path, side: int) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(
        cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA)[..., ::-1]
    )


def blank(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(120, 4, size=(*CANVAS_HW, 3))
    return np.clip(noise, 0, 255).astype(np.uint8)


def place(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    out = canvas.copy()
    out[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    return out


def face_center(detector, patch: np.ndarray, x: int, y: int) -> tuple[float, float, float]:
    """Centre and size of the face of ``patch`` once placed at ``(x, y)``."""
    face = choose_face(detector.detect(patch))
    assert face is not None
    return face.center[0] + x, face.center[1] + y, face.size


@pytest.fixture(scope="module")
def monroe(shared_media) -> np.ndarray:
    return read_rgb(shared_media / "monroe.png", 160)


def tracker_with(detector, **overrides) -> FaceTracker:
    return FaceTracker(replace(FaceTrackerConfig(), **overrides), detector)


def test_tracks_a_face_and_gives_the_model_sized_crop(detector, monroe):
    tracker = tracker_with(detector)
    frame = place(blank(), monroe, 200, 120)
    cx, cy, size = face_center(detector, monroe, 200, 120)
    result = tracker.update(frame, 10.0)
    assert result.status is TrackStatus.TRACKING
    assert result.image is not None and result.image.shape == (256, 256, 3)
    assert result.image.dtype == np.uint8
    assert result.detection is not None and result.crop is not None
    assert math.hypot(result.crop.cx - cx, result.crop.cy - cy) < 0.03 * size
    assert result.crop.side == pytest.approx(1.6 * size, rel=0.05)
    assert result.affine is not None and result.affine.shape == (2, 3)
    assert tracker.counters.full_searches == 1


def test_no_face_is_held_then_lost_then_recovered(detector, monroe):
    tracker = tracker_with(detector, hold_seconds=0.5, search_interval_s=0.0)
    with_face = place(blank(), monroe, 150, 100)
    t = 0.0
    for _ in range(5):
        last = tracker.update(with_face, t)
        t += DT
    assert last.status is TrackStatus.TRACKING
    seen = t - DT
    statuses = []
    for k in range(25):
        result = tracker.update(blank(k), t)
        statuses.append((round(t - seen, 3), result.status))
        if result.status is TrackStatus.HELD:
            assert result.crop == last.crop  # the last crop is held, unchanged
            assert result.image is not None and result.detection is None
        else:
            assert result.crop is None and result.image is None and not result.has_face
        t += DT
    assert all((s is TrackStatus.HELD) == (age <= 0.5) for age, s in statuses)
    assert statuses[-1][1] is TrackStatus.LOST
    back = tracker.update(place(blank(), monroe, 250, 150), t)
    assert back.status is TrackStatus.TRACKING
    cx, cy, size = face_center(detector, monroe, 250, 150)
    assert back.crop is not None
    # Recovery after LOST snaps to the new place instead of gliding from the old one.
    assert math.hypot(back.crop.cx - cx, back.crop.cy - cy) < 0.03 * size


def test_search_interval_limits_full_searches_without_a_face(detector):
    tracker = tracker_with(detector, search_interval_s=0.2)
    for k in range(25):  # one second of empty frames
        assert tracker.update(blank(k), k * DT).status is TrackStatus.LOST
    assert tracker.counters.full_searches == 5


def test_never_raises_on_odd_frames_without_a_face(detector):
    tracker = tracker_with(detector, search_interval_s=0.0)
    for k, image in enumerate(
        [np.zeros((8, 8, 3), np.uint8), np.full((1, 500, 3), 255, np.uint8), blank()]
    ):
        assert tracker.update(image, k * DT).status is TrackStatus.LOST


def test_the_largest_of_two_faces_is_followed(shared_media, detector):
    big = read_rgb(shared_media / "mona_lisa.png", 200)
    small = read_rgb(shared_media / "monroe.png", 120)
    for big_x, small_x in ((20, 340), (260, 20)):
        canvas = place(place(blank(), big, big_x, 80), small, small_x, 20)
        cx, cy, size = face_center(detector, big, big_x, 80)
        result = tracker_with(detector).update(canvas, 0.0)
        assert result.crop is not None
        assert math.hypot(result.crop.cx - cx, result.crop.cy - cy) < 0.05 * size


def test_select_follows_the_face_nearest_a_point(shared_media, detector):
    big = read_rgb(shared_media / "mona_lisa.png", 200)
    small = read_rgb(shared_media / "monroe.png", 120)
    canvas = place(place(blank(), big, 20, 80), small, 340, 20)
    tracker = tracker_with(detector)
    first = tracker.update(canvas, 0.0)
    sx, sy, size = face_center(detector, small, 340, 20)
    tracker.select((400.0, 60.0))
    picked = tracker.update(canvas, DT)
    assert first.crop is not None and picked.crop is not None
    assert math.hypot(picked.crop.cx - sx, picked.crop.cy - sy) < 0.05 * size
    tracker.select(None)
    assert tracker.update(canvas, 2 * DT).crop.side > picked.crop.side  # type: ignore[union-attr]


def test_a_moving_face_is_followed_by_region_tracking(detector, monroe):
    tracker = tracker_with(detector)
    for i in range(20):
        x, y = 60 + 8 * i, 80 + 3 * i
        result = tracker.update(place(blank(i), monroe, x, y), i * DT)
        assert result.status is TrackStatus.TRACKING
    assert tracker.counters.full_searches == 1
    assert tracker.counters.region_detections >= 20
    cx, cy, size = face_center(detector, monroe, x, y)
    assert result.crop is not None
    assert math.hypot(result.crop.cx - cx, result.crop.cy - cy) < 0.1 * size


def test_a_still_face_gives_a_still_crop(detector, monroe):
    tracker = tracker_with(detector)
    frame = place(blank(), monroe, 150, 100)
    crops = [tracker.update(frame, i * DT).crop for i in range(15)]
    assert all(c == crops[0] for c in crops)


def test_flow_between_detections(detector, monroe):
    tracker = tracker_with(detector, detect_every=3)
    fresh = []
    for i in range(12):
        result = tracker.update(place(blank(i), monroe, 60 + 6 * i, 80), i * DT)
        assert result.status is TrackStatus.TRACKING
        fresh.append(result.detection is not None)
    assert fresh == [True, False, False] * 4
    assert tracker.counters.flow_steps == 8
    cx, cy, size = face_center(detector, monroe, 60 + 6 * 11, 80)
    assert result.crop is not None
    assert math.hypot(result.crop.cx - cx, result.crop.cy - cy) < 0.1 * size


def test_match_face_rejects_implausible_size_changes():
    prev = Detection(box=(100.0, 100.0, 200.0, 200.0), score=1.0)
    near_small = Detection(box=(140.0, 140.0, 160.0, 160.0), score=1.0)
    far_same = Detection(box=(130.0, 100.0, 230.0, 200.0), score=1.0)
    assert match_face([near_small], prev, 1.6) is None
    assert match_face([near_small, far_same], prev, 1.6) == far_same


def test_config_is_validated():
    with pytest.raises(ValueError, match="hold_seconds"):
        FaceTrackerConfig(hold_seconds=-1)
    with pytest.raises(ValueError, match="detect_every"):
        FaceTrackerConfig(detect_every=0)


# --- the stage and the portrait crop ---------------------------------------------------


def test_stage_stores_a_face_crop_using_the_capture_time(detector, monroe):
    stage = FaceTrackStage(FaceTrackerConfig(hold_seconds=0.3), detector)
    assert FaceCrop in stage.produces and stage.blocking
    with pytest.raises(RuntimeError, match="start"):
        stage.process(Frame(seq=0, capture_ns=0, image=blank()))
    stage.start()
    frame = stage.process(
        Frame(seq=0, capture_ns=5_000_000_000, image=place(blank(), monroe, 100, 90))
    )
    assert frame.get(FaceCrop).status is TrackStatus.TRACKING
    assert frame.get(FaceCrop).time_s == pytest.approx(5.0)
    held = stage.process(Frame(seq=1, capture_ns=5_200_000_000, image=blank()))
    assert held.get(FaceCrop).status is TrackStatus.HELD
    lost = stage.process(Frame(seq=2, capture_ns=5_400_000_000, image=blank()))
    assert lost.get(FaceCrop).status is TrackStatus.LOST
    stage.stop()


@pytest.mark.parametrize("name", ["mona_lisa.png", "monroe.png", "neutral1.jpg"])
def test_prepare_portrait_crops_each_shared_portrait(shared_media, detector, name):
    bgr = cv2.imread(str(shared_media / name), cv2.IMREAD_COLOR)
    assert bgr is not None
    image = np.ascontiguousarray(bgr[..., ::-1], dtype=np.uint8)
    crop = prepare_portrait(image, CropConfig(size=128), detector)
    assert crop.status is TrackStatus.TRACKING
    assert crop.image is not None and crop.image.shape == (128, 128, 3)
    assert crop.detection is not None and crop.crop is not None
    assert crop.crop.side == pytest.approx(1.6 * crop.detection.size)
    # The box centre maps to the crop centre and its mean size to 1 / 1.6 of the crop.
    box = crop.detection.box
    x0, y0 = crop.affine @ np.array([box[0], box[1], 1.0])
    x1, y1 = crop.affine @ np.array([box[2], box[3], 1.0])
    assert (x0 + x1) / 2 == pytest.approx(63.5) and (y0 + y1) / 2 == pytest.approx(63.5)
    assert ((x1 - x0) + (y1 - y0)) / 2 == pytest.approx(128 / 1.6)


def test_prepare_portrait_without_a_face_says_what_to_do(detector):
    with pytest.raises(NoFaceError, match="one face is clearly"):
        prepare_portrait(blank(), detector=detector)


def test_reset_is_deferred_to_the_next_update(detector, monroe):
    tracker = tracker_with(detector)
    frame = place(blank(), monroe, 150, 100)
    tracker.update(frame, 0.0)
    tracker.reset()  # e.g. from the control thread while a frame is in flight
    assert tracker.counters.full_searches == 1
    again = tracker.update(frame, DT)
    assert again.status is TrackStatus.TRACKING
    assert tracker.counters.full_searches == 2
    tracker.reset()
    assert tracker.update(blank(), 2 * DT).status is TrackStatus.LOST  # nothing held after a reset
