"""A built-in moving test picture: a source that needs no files or devices."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from pipeline.frame import Image, check_image
from pipeline.stage import SourceFrame, SourceInfo, as_fraction
from stages.stamp import DEFAULT_REGION, StampRegion, stamp

_MIN_WIDTH = 72  # the stamp needs 36 cells of at least 2 px
_MIN_HEIGHT = 40  # and a band of at least 2 rows at the default 1/20 height
_GRID = 32  # px between the scrolling grid lines


@dataclass(frozen=True, slots=True)
class PatternConfig:
    """Settings of `PatternSource`.

    Attributes:
        width, height: picture size in pixels.
        fps: nominal frame rate (the runtime paces the source to it live).
        frames: frames to produce before the end of the stream; ``None``
            means endless.
        seed: picks the background texture and the shapes' colours and
            speeds; the same seed gives the same pictures.
        stamp_region: where the frame index is stamped (see `stages.stamp`).
        name: source name in the graph.
    """

    width: int = 640
    height: int = 480
    fps: float | Fraction = 30
    frames: int | None = None
    seed: int = 0
    stamp_region: StampRegion = DEFAULT_REGION
    name: str = "pattern"

    def __post_init__(self) -> None:
        if self.width < _MIN_WIDTH or self.height < _MIN_HEIGHT:
            raise ValueError(
                f"test pattern {self.width}x{self.height} is too small: it must be at "
                f"least {_MIN_WIDTH}x{_MIN_HEIGHT} to hold the frame-index stamp"
            )
        if self.fps <= 0:
            raise ValueError(f"pattern fps must be > 0, got {self.fps}")
        if self.frames is not None and self.frames < 0:
            raise ValueError(f"pattern frames must be >= 0 or None, got {self.frames}")


@dataclass(frozen=True, slots=True)
class _Shape:
    """One moving shape: a bouncing disc or box, fixed colour and velocity."""

    kind: str  # "disc" or "box"
    size: int  # radius or half side, px
    color: tuple[int, int, int]
    start: tuple[float, float]  # x, y in px at frame 0
    speed: tuple[float, float]  # px per frame


def _bounce(start: float, speed: float, t: int, lo: float, hi: float) -> int:
    """Position of a point moving at ``speed`` between ``lo`` and ``hi``, reflecting."""
    span = max(hi - lo, 1.0)
    pos = (start - lo + speed * t) % (2 * span)
    return round(lo + (pos if pos <= span else 2 * span - pos))


class PatternSource:
    """A moving, textured test picture with the frame index stamped in its pixels.

    Each frame is a pure function of its index and the seed: a colour
    gradient with smooth blobs and a grid, all scrolling sideways, under
    bouncing discs and boxes; frame ``i`` carries ``i`` in its stamp band
    (read it with `stages.stamp.read_stamp`). ``pts`` counts frames in a time
    base of ``1/fps``. Not self-paced: ``read()`` returns at once.
    """

    def __init__(self, config: PatternConfig | None = None) -> None:
        self.config = config or PatternConfig()
        self.name = self.config.name
        self._rate = as_fraction(self.config.fps)
        self._background: Image | None = None
        self._shapes: tuple[_Shape, ...] = ()
        self._index = 0
        self._closed = False

    def open(self) -> SourceInfo:
        rng = np.random.default_rng(self.config.seed)
        self._background = self._make_background(rng)
        self._shapes = self._make_shapes(rng)
        self._index, self._closed = 0, False
        c = self.config
        return SourceInfo(c.width, c.height, self._rate, self_paced=False, frame_count=c.frames)

    def read(self) -> SourceFrame | None:
        """The next frame; ``None`` after ``frames`` frames or after `close`."""
        if self._closed:
            return None
        if self.config.frames is not None and self._index >= self.config.frames:
            return None
        image = self.render(self._index)
        frame = SourceFrame(image, pts=self._index, time_base=1 / self._rate)
        self._index += 1
        return frame

    def close(self) -> None:
        self._closed = True

    def render(self, index: int) -> Image:
        """Frame ``index`` as an ``(H, W, 3)`` uint8 RGB picture (after `open`)."""
        if self._background is None:
            raise RuntimeError(f"{self.name}: read() or render() before open()")
        image = np.roll(self._background, shift=2 * index, axis=1)
        for shape in self._shapes:
            self._draw(image, shape, index)
        stamp(image, index, self.config.stamp_region)
        return check_image(image, what=f"{self.name} frame {index}")

    def _make_background(self, rng: np.random.Generator) -> Image:
        """Gradient + smooth colour waves + grid, ``(H, W, 3)`` uint8.

        Periodic across the width, so scrolling it (`np.roll`) shows no seam.
        """
        h, w = self.config.height, self.config.width
        x = 2 * np.pi * np.arange(w, dtype=np.float32)[None, :] / w  # (1, W) phase
        y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]  # (H, 1)
        image = np.empty((h, w, 3), dtype=np.float32)
        image[..., 0] = 128 + 70 * np.cos(x)
        image[..., 1] = 60 + 140 * y
        image[..., 2] = 128 + 70 * np.sin(x)
        for channel in range(3):
            for _ in range(3):
                fx, fy = int(rng.integers(1, 4)), float(rng.uniform(0.5, 3.0))
                phase = float(rng.uniform(0, 2 * np.pi))
                image[..., channel] += 25 * np.cos(fx * x + 2 * np.pi * fy * y + phase)
        out = np.clip(image, 0, 255).astype(np.uint8)
        lines_x = np.round(np.arange(max(1, round(w / _GRID))) * w / max(1, round(w / _GRID)))
        out[::_GRID, :] //= 2
        out[:, lines_x.astype(np.int64)] //= 2
        return out

    def _make_shapes(self, rng: np.random.Generator) -> tuple[_Shape, ...]:
        h, w = self.config.height, self.config.width
        unit = min(w, h)
        shapes = []
        for kind in ("disc", "box", "disc", "box"):
            size = int(rng.uniform(0.06, 0.14) * unit)
            color = tuple(int(v) for v in rng.integers(0, 256, size=3))
            start = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
            speed = (float(rng.uniform(-0.012, 0.012) * w),
                     float(rng.uniform(-0.012, 0.012) * h))
            shapes.append(_Shape(kind, max(size, 2), (color[0], color[1], color[2]),
                                 start, speed))
        return tuple(shapes)

    def _draw(self, image: Image, shape: _Shape, index: int) -> None:
        h, w = image.shape[:2]
        s = shape.size
        cx = _bounce(shape.start[0], shape.speed[0], index, s, w - 1 - s)
        cy = _bounce(shape.start[1], shape.speed[1], index, s, h - 1 - s)
        if shape.kind == "disc":
            cv2.circle(image, (cx, cy), s, shape.color, thickness=-1, lineType=cv2.LINE_AA)
            cv2.circle(image, (cx, cy), s // 2, (255, 255, 255), thickness=2)
        else:
            cv2.rectangle(image, (cx - s, cy - s), (cx + s, cy + s), shape.color, thickness=-1)
            cv2.line(image, (cx - s, cy - s), (cx + s, cy + s), (0, 0, 0), thickness=2)
