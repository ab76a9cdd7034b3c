"""A procedural talking-head world with exact ground truth for reenactment.

`Identity` (what reenactment preserves: face shape, skin, hair, eyes, brows,
nose, lips, neck, torso, clothing, background) and `Motion` (what it
transfers: head pose, framing, mouth, smile, blinks, brows) are independent,
so any identity can be rendered with any motion and every cross-subject pair
has a ground-truth picture, ``render(identity_a, motion_b, size)``.

Modules, in reading order:
    identity, motion      the two halves of a frame, sampled from seeds
    geometry, scene       the 3D head, pose and camera
    face, hair, body,     what is drawn, back to front
    backdrop, lighting
    canvas, render        supersampled drawing -> `Render` (image, landmarks,
                          region masks); `landmarks` names the 33 points
    splits, world         train/val/test identities and their clips
    dataset               torch datasets (imports torch)
    cache                 optional on-disk frames for large sizes
    sheet, timing         look at it; time it

Conventions: image x right, y down; ``left``/``right`` name image sides;
landmarks are pixel coordinates with pixel centres at integers. Rendering is
deterministic: the same arguments give byte-identical output. One frame costs
a few milliseconds of one core at 64-128 px (``python -m
training.world.timing`` measures it).
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
from training.world.splits import SPLITS, WorldSplits
from training.world.world import ClipConfig, FrameRef, World

__all__ = [
    "JAW_LANDMARKS",
    "LANDMARK_NAMES",
    "MASK_NAMES",
    "MOTION_FIELDS",
    "MOTION_RANGES",
    "SPLITS",
    "ClipConfig",
    "FrameRef",
    "HairStyle",
    "Identity",
    "Motion",
    "MotionClip",
    "MotionConfig",
    "Render",
    "World",
    "WorldSplits",
    "contact_sheet",
    "render",
    "sample_clip",
]
