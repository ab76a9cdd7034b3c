"""`render`: one identity in one motion, as a picture with ground truth.

The result carries the RGB image, the landmarks (`training.world.landmarks`)
in output pixels and the region masks. Rendering is a pure function of
``(identity, motion, size)``: the same arguments give byte-identical output.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from training.world import body, face, hair
from training.world.backdrop import render_backdrop
from training.world.canvas import Painter, Region
from training.world.identity import Identity
from training.world.landmarks import landmark_normals, landmarks_3d
from training.world.lighting import shade_head
from training.world.motion import Motion
from training.world.scene import Scene

MASK_NAMES: tuple[str, ...] = ("hair", "torso", "face_outline", "face", "background")
"""Region masks of a `Render`, in the order `Render.mask_stack` uses by default."""

_REGION_OF_MASK = {
    "hair": Region.HAIR,
    "torso": Region.TORSO,
    "face": Region.FACE,
    "background": Region.BACKGROUND,
}

BoolMask = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class Render:
    """A rendered frame and its ground truth.

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB.
        landmarks: ``(K, 2)`` float32 pixel coordinates (x, y) in
            `LANDMARK_NAMES` order; pixel centres sit at integers, so the
            picture spans [-0.5, S - 0.5].
        landmark_visible: ``(K,)`` bool, True where the point faces the camera.
        labels: ``(S, S)`` uint8 `Region` per pixel: hair, torso (neck and
            clothing), face (skin with features and ears) and background
            partition the picture.
        face_outline: ``(S, S)`` bool band a few pixels wide around the face
            region's boundary (jaw, cheeks, hairline); it overlaps the
            regions on both sides of that boundary.
    """

    image: npt.NDArray[np.uint8]
    landmarks: npt.NDArray[np.float32]
    landmark_visible: BoolMask
    labels: npt.NDArray[np.uint8]
    face_outline: BoolMask

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def mask(self, name: str) -> BoolMask:
        """One region mask ``(S, S)`` bool; ``name`` is one of `MASK_NAMES`."""
        if name == "face_outline":
            return self.face_outline
        if name not in _REGION_OF_MASK:
            raise KeyError(f"unknown mask {name!r}; masks are {MASK_NAMES}")
        return self.labels == _REGION_OF_MASK[name]

    def mask_stack(self, names: tuple[str, ...] = MASK_NAMES) -> BoolMask:
        """Masks stacked ``(len(names), S, S)`` bool."""
        return np.stack([self.mask(n) for n in names])


def supersample_for(size: int) -> int:
    """Drawing scale: about 384 canvas pixels across, between 2x and 4x."""
    return int(np.clip(round(384 / size), 2, 4))


def render(identity: Identity, motion: Motion, size: int) -> Render:
    """Draw ``identity`` moving as ``motion`` at ``size`` x ``size`` pixels."""
    if size < 16:
        raise ValueError(f"render size must be at least 16 pixels, got {size}")
    scene = Scene.of(identity, motion)
    painter = Painter(size, supersample_for(size))
    features = face.Features.of(scene)
    _paint(painter, scene, features)
    image, labels = painter.finish(render_backdrop(identity.backdrop, size))
    image = shade_head(image, painter.coverage((Region.FACE, Region.HAIR)), scene)
    points = landmarks_3d(scene, features)
    pixels = scene.project(points) * size - 0.5
    visible = scene.pose.facing(landmark_normals(scene, points)) > 0
    return Render(
        image=image,
        landmarks=pixels.astype(np.float32),
        landmark_visible=np.asarray(visible, bool),
        labels=labels,
        face_outline=outline_band(labels),
    )


def _paint(painter: Painter, scene: Scene, features: face.Features) -> None:
    """Everything in back-to-front order."""
    layout = hair.hair_layout(scene)
    body.draw_torso(painter, scene)
    hair.draw_back(painter, scene)
    body.draw_neck(painter, scene)
    if layout is not None:
        hair.draw_cap(painter, scene, layout)
    if layout is None or not layout.covers_ears:
        face.draw_ears(painter, scene)
    hair.draw_curtains(painter, scene, in_front=False)
    face.draw_skin(painter, scene, layout)
    face.draw_features(painter, scene, features)
    hair.draw_curtains(painter, scene, in_front=True)
    if layout is not None:
        hair.draw_fringe(painter, scene, layout)


def outline_band(labels: npt.NDArray[np.uint8]) -> BoolMask:
    """Pixels within about 2 % of the picture of the face region's boundary."""
    size = labels.shape[0]
    radius = max(1, round(0.02 * size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    face_mask = (labels == Region.FACE).astype(np.uint8)
    return cv2.morphologyEx(face_mask, cv2.MORPH_GRADIENT, kernel).astype(bool)
