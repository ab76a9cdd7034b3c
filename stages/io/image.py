"""A still image repeated as a stream: a PNG/JPEG portrait as a source."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2

from pipeline.frame import Image, check_image
from pipeline.stage import SourceFrame, SourceInfo, as_fraction
from stages.io.errors import SourceError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
"""File name endings `ImageSource` accepts (anything OpenCV decodes)."""


@dataclass(frozen=True, slots=True)
class ImageSourceConfig:
    """Settings of `ImageSource`.

    Attributes:
        path: the picture file (PNG, JPEG, or anything else OpenCV reads).
        fps: the rate at which the picture is repeated.
        frames: how many times to repeat it; ``None`` means endless.
        size: ``(width, height)`` to resize to, or ``None`` for the file's size.
        name: source name in the graph.
    """

    path: Path | str
    fps: float | Fraction = 30
    frames: int | None = None
    size: tuple[int, int] | None = None
    name: str = "image"

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"image source fps must be > 0, got {self.fps}")
        if self.frames is not None and self.frames < 0:
            raise ValueError(f"image source frames must be >= 0 or None, got {self.frames}")
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"image source size must be positive (width, height), got {self.size}")


def load_rgb(path: Path | str, size: tuple[int, int] | None = None) -> Image:
    """Read a picture file as ``(H, W, 3)`` uint8 RGB; alpha is dropped, grey expanded.

    Raises `SourceError` for a missing or undecodable file.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"image file not found: {path}; check the path")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(
            f"cannot decode {path} as an image; give a PNG or JPEG file "
            f"(or another format OpenCV reads: {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    if size is not None and (bgr.shape[1], bgr.shape[0]) != size:
        shrink = size[0] * size[1] < bgr.shape[0] * bgr.shape[1]
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return check_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), what=str(path))


class ImageSource:
    """One picture file, read once and delivered ``frames`` times at ``fps``.

    Every `read` returns a fresh copy, so a stage that draws on its frame
    cannot change the next one. ``pts`` counts frames in a time base of
    ``1/fps`` (the repetition gives the stream a timeline a file sink can
    use). Not self-paced: the runtime paces it live. Errors (missing file,
    not an image) are raised from `open` as `SourceError`.
    """

    def __init__(self, config: ImageSourceConfig) -> None:
        self.config = config
        self.name = config.name
        self._rate = as_fraction(config.fps)
        self._image: Image | None = None
        self._index = 0
        self._closed = False

    def open(self) -> SourceInfo:
        self._image = load_rgb(self.config.path, self.config.size)
        self._index, self._closed = 0, False
        h, w = self._image.shape[:2]
        return SourceInfo(w, h, self._rate, self_paced=False, frame_count=self.config.frames)

    def read(self) -> SourceFrame | None:
        """The next copy; ``None`` after ``frames`` frames or after `close`."""
        image = self._image
        if self._closed:
            return None
        if image is None:
            raise RuntimeError(f"{self.name}: read() before open()")
        if self.config.frames is not None and self._index >= self.config.frames:
            return None
        frame = SourceFrame(image.copy(), pts=self._index, time_base=1 / self._rate)
        self._index += 1
        return frame

    def close(self) -> None:
        self._closed = True
