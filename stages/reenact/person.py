"""The synthetic world as a driver and as avatars: the demo that needs no camera and no files.

`PersonSource` plays one *held-out* identity of the synthetic world
(`training.worldset.WorldSplits` test range: never seen in training) moving
through a sampled motion clip, as a 640 x 480 stream at 30 fps. The clip is
rendered once when the source opens (the renderer costs about 10-15 ms a
frame, too much to share two cores with the model live) at a small size,
then scaled into the frame on each read, and played forward and backward so
the loop has no jump.

The face is found by the real face tracker: RetinaFace finds the synthetic
faces (measured: 59 of 60 frames of 20 held-out identities at 480 px), so no
renderer-provided crop is needed and the demo exercises the same path as a
camera.

`person_portrait` renders an identity at rest as an avatar portrait; the
avatar loader name ``person`` makes ``person:N`` a valid avatar. As a source,
``person[:N]`` is an endpoint of `stages.endpoints`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from pipeline.frame import Image, check_image
from pipeline.stage import SourceFrame, SourceInfo, as_fraction
from stages.reenact.avatar import Portrait, PortraitLoader

TEST_SPLIT = "test"


def held_out_identity(index: int) -> int:
    """The identity seed of the ``index``-th held-out (test split) identity."""
    from training.worldset import WorldSplits

    seeds = WorldSplits().seeds(TEST_SPLIT)
    return seeds[index % len(seeds)]


DEFAULT_DRIVER_IDENTITY = 0
"""Index into the held-out identities of the demo's driver."""
DEFAULT_AVATAR_IDENTITY = 1
"""Index into the held-out identities of the demo's avatar (another person)."""


@dataclass(frozen=True, slots=True)
class PersonConfig:
    """Settings of `PersonSource`.

    Attributes:
        identity: held-out identity index (see `held_out_identity`).
        motion_seed: picks the motion clip.
        clip_frames: frames rendered; the stream plays them back and forth.
        fps: stream rate.
        width, height: frame size; the square render is scaled to the
            height and centred on the backdrop's edge colour.
        render_size: side at which each frame is rendered before scaling.
        frames: frames to produce before the end of the stream (``None``: endless).
        name: source name in the graph.
    """

    identity: int = DEFAULT_DRIVER_IDENTITY
    motion_seed: int = 0
    clip_frames: int = 90
    fps: float | Fraction = 30
    width: int = 640
    height: int = 480
    render_size: int = 192
    frames: int | None = None
    name: str = "person"

    def __post_init__(self) -> None:
        if self.clip_frames < 2:
            raise ValueError(f"clip_frames must be >= 2, got {self.clip_frames}")
        if min(self.width, self.height) < 16:
            raise ValueError(f"frame size must be at least 16x16, got {self.width}x{self.height}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.frames is not None and self.frames < 0:
            raise ValueError(f"frames must be >= 0 or None, got {self.frames}")


def ping_pong(index: int, length: int) -> int:
    """Index into a clip of ``length`` played forward then backward, endlessly."""
    period = 2 * (length - 1)
    phase = index % period
    return phase if phase < length else period - phase


class PersonSource:
    """A held-out synthetic person talking and moving; see the module docstring.

    Not self-paced: the runtime paces it to ``fps`` live. ``pts`` counts
    frames in a time base of ``1 / fps``.
    """

    def __init__(self, config: PersonConfig | None = None) -> None:
        self.config = config or PersonConfig()
        self.name = self.config.name
        self._rate = as_fraction(self.config.fps)
        self._clip: list[Image] = []
        self._index = 0

    def open(self) -> SourceInfo:
        from training.world.identity import Identity
        from training.world.motion import sample_clip
        from training.world.render import render

        c = self.config
        identity = Identity.from_seed(held_out_identity(c.identity))
        motion = sample_clip(c.motion_seed, c.clip_frames, float(self._rate))
        self._clip = [render(identity, motion[t], c.render_size).image for t in range(len(motion))]
        self._index = 0
        return SourceInfo(c.width, c.height, self._rate, self_paced=False, frame_count=c.frames)

    def read(self) -> SourceFrame | None:
        if not self._clip:
            return None  # closed, or read before open
        if self.config.frames is not None and self._index >= self.config.frames:
            return None
        square = self._clip[ping_pong(self._index, len(self._clip))]
        frame = SourceFrame(self._place(square), pts=self._index, time_base=1 / self._rate)
        self._index += 1
        return frame

    def close(self) -> None:
        self._clip = []

    def _place(self, square: Image) -> Image:
        """The square render scaled to the frame height, centred, edges extended."""
        w, h = self.config.width, self.config.height
        side = min(w, h)
        scaled = cv2.resize(square, (side, side), interpolation=cv2.INTER_LINEAR)
        left, top = (w - side) // 2, (h - side) // 2
        framed = cv2.copyMakeBorder(scaled, top, h - side - top, left, w - side - left,
                                    cv2.BORDER_REPLICATE)
        return check_image(np.asarray(framed, dtype=np.uint8), what=self.name)


def person_portrait(identity_index: int, size: int = 512) -> Portrait:
    """A held-out identity at rest (neutral pose and expression) as a portrait."""
    from training.world.identity import Identity
    from training.world.motion import Motion
    from training.world.render import render

    identity = Identity.from_seed(held_out_identity(identity_index))
    return Portrait(render(identity, Motion(), size).image)


def person_loader(arg: str) -> Portrait:
    """Avatar loader for ``person:N`` (a held-out identity index, default 1)."""
    try:
        index = int(arg) if arg else DEFAULT_AVATAR_IDENTITY
    except ValueError:
        raise ValueError(f"person avatar {arg!r}: write person:N with N an integer") from None
    return person_portrait(index)


def avatar_loaders() -> dict[str, PortraitLoader]:
    """The portrait loaders this package adds: ``person``."""
    return {"person": person_loader}
