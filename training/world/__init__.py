"""A procedural talking-head world with exact ground truth for reenactment.

`Identity` (what reenactment preserves) and `Motion` (what it transfers) are
independent, so any identity can be rendered with any motion: every
cross-subject pair has a ground-truth image, ``render(identity_a, motion_b)``.
"""

from training.world.identity import HairStyle, Identity
from training.world.landmarks import JAW_LANDMARKS, LANDMARK_NAMES
from training.world.motion import (
    MOTION_FIELDS,
    MOTION_RANGES,
    Motion,
    MotionClip,
    MotionConfig,
    sample_clip,
)
from training.world.render import MASK_NAMES, Render, render
from training.world.sheet import contact_sheet

__all__ = [
    "JAW_LANDMARKS",
    "LANDMARK_NAMES",
    "MASK_NAMES",
    "MOTION_FIELDS",
    "MOTION_RANGES",
    "HairStyle",
    "Identity",
    "Motion",
    "MotionClip",
    "MotionConfig",
    "Render",
    "contact_sheet",
    "render",
    "sample_clip",
]
