"""The world: every identity of every split, each with its motion clips.

A frame of the world is addressed by a `FrameRef` (split, identity index,
clip, frame). Identity ``i`` of a split owns ``clips_per_identity`` clips;
their motions are sampled from seeds derived from the identity seed, so the
whole world is a pure function of its `WorldSplits` and `ClipConfig`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from training.world.identity import Identity
from training.world.motion import Motion, MotionClip, MotionConfig, sample_clip
from training.world.render import Render, render
from training.world.splits import WorldSplits

MAX_CLIPS = 1000
"""Clip seeds are ``identity_seed * MAX_CLIPS + clip``; more clips would collide."""


@dataclass(frozen=True)
class ClipConfig:
    """Motion clips per identity: how many, how long, at what frame rate."""

    clips_per_identity: int = 4
    frames: int = 100
    fps: float = 25.0
    motion: MotionConfig = field(default_factory=MotionConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.clips_per_identity <= MAX_CLIPS:
            raise ValueError(f"clips_per_identity must be in 1..{MAX_CLIPS}")
        if self.frames < 2:
            raise ValueError(f"a clip needs at least 2 frames, got {self.frames}")


@dataclass(frozen=True)
class FrameRef:
    """One frame of the world: frame ``frame`` of clip ``clip`` of identity ``identity``."""

    split: str
    identity: int
    clip: int
    frame: int


class World:
    """Identities, their clips, and rendering of any (identity, motion) pair.

    Clips are memoised in a per-instance LRU of ``clip_cache`` clips (sampling
    one costs about 2 ms; a 100-frame clip holds 4.4 KB, so the default keeps
    2000 identities x 4 clips in about 36 MB); nothing else is stored.
    """

    def __init__(
        self,
        splits: WorldSplits | None = None,
        clips: ClipConfig | None = None,
        clip_cache: int = 8192,
    ) -> None:
        self.splits = splits or WorldSplits()
        self.clips = clips or ClipConfig()
        self._clip_cache: OrderedDict[tuple[int, int], MotionClip] = OrderedDict()
        self._clip_cache_size = clip_cache

    def identity(self, split: str, index: int) -> Identity:
        return self.splits.identity(split, index)

    def clip(self, split: str, index: int, clip: int) -> MotionClip:
        """Clip ``clip`` of identity ``index`` of ``split``."""
        if not 0 <= clip < self.clips.clips_per_identity:
            raise IndexError(f"identities have clips 0..{self.clips.clips_per_identity - 1}")
        key = (self.splits.seed(split, index), clip)
        cached = self._clip_cache.get(key)
        if cached is not None:
            self._clip_cache.move_to_end(key)
            return cached
        cfg = self.clips
        made = sample_clip(key[0] * MAX_CLIPS + clip, cfg.frames, cfg.fps, cfg.motion)
        self._clip_cache[key] = made
        if len(self._clip_cache) > self._clip_cache_size:
            self._clip_cache.popitem(last=False)
        return made

    def motion(self, ref: FrameRef) -> Motion:
        if not 0 <= ref.frame < self.clips.frames:
            raise IndexError(f"clips have frames 0..{self.clips.frames - 1}, asked for {ref}")
        return self.clip(ref.split, ref.identity, ref.clip)[ref.frame]

    def render(self, ref: FrameRef, size: int) -> Render:
        """The frame ``ref`` as the world shows it."""
        return render(self.identity(ref.split, ref.identity), self.motion(ref), size)

    def render_cross(self, identity_of: FrameRef, motion_of: FrameRef, size: int) -> Render:
        """Ground truth of cross reenactment: the identity of one frame, the motion of another."""
        identity = self.identity(identity_of.split, identity_of.identity)
        return render(identity, self.motion(motion_of), size)
