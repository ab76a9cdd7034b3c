"""The live face path: detect, track, smooth and crop the driving face.

Public API:
    `FaceTrackStage` (the graph stage) and `prepare_portrait` (the avatar's
    still crop) in `stages.face.stage`; `FaceTracker` in `stages.face.tracker`;
    `FaceDetector`, `DetectorConfig`, `create_detector` in
    `stages.face.detector`; the crop rule in `stages.face.crop`; the One-Euro
    filter in `stages.face.smoothing`; result types in `stages.face.types`.

Importing this package loads no detector runtime; detectors load their
packages when built.
"""

from stages.face.crop import CropConfig, crop_affine, crop_box_for, warp_crop
from stages.face.detector import DetectorConfig, FaceDetector, create_detector
from stages.face.smoothing import OneEuroConfig, OneEuroFilter
from stages.face.stage import FaceTrackStage, NoFaceError, prepare_portrait
from stages.face.tracker import FaceTracker, FaceTrackerConfig
from stages.face.types import CropBox, Detection, FaceCrop, TrackStatus

__all__ = [
    "CropBox",
    "CropConfig",
    "Detection",
    "DetectorConfig",
    "FaceCrop",
    "FaceDetector",
    "FaceTrackStage",
    "FaceTracker",
    "FaceTrackerConfig",
    "NoFaceError",
    "OneEuroConfig",
    "OneEuroFilter",
    "TrackStatus",
    "create_detector",
    "crop_affine",
    "crop_box_for",
    "prepare_portrait",
    "warp_crop",
]
