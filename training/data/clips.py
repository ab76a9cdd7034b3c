"""Random access to the frames of a clip, already resized to the model size.

`FolderClip` reads one image file per frame. `VideoClip` indexes a video's
frames once (demuxing packets, no decoding) and serves frame ``i`` by seeking
to the keyframe before it and decoding forward; every frame decoded on the
way goes into a shared, byte-bounded `FrameLRU`, so nearby frames are cheap
afterwards. PyAV is imported only when a video is read.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from training.data.layout import ClipKind, ClipSource, frame_files
from training.data.tensors import square_resize

Image = npt.NDArray[np.uint8]


class Clip(Protocol):
    """A clip whose frames come out ``(size, size, 3)`` uint8 RGB."""

    name: str

    def __len__(self) -> int: ...

    def frame(self, index: int) -> Image: ...


class FrameLRU:
    """Decoded frames keyed by ``(clip path, index)``, at most ``max_bytes`` in total."""

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames: OrderedDict[tuple[str, int], Image] = OrderedDict()

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, key: tuple[str, int]) -> Image | None:
        frame = self._frames.get(key)
        if frame is not None:
            self._frames.move_to_end(key)
        return frame

    def put(self, key: tuple[str, int], frame: Image) -> None:
        if key in self._frames or frame.nbytes > self.max_bytes:
            return
        self._frames[key] = frame
        self.bytes += frame.nbytes
        while self.bytes > self.max_bytes:
            _, dropped = self._frames.popitem(last=False)
            self.bytes -= dropped.nbytes


def _check_index(name: str, index: int, length: int) -> None:
    if not 0 <= index < length:
        raise IndexError(f"clip {name} has frames 0..{length - 1}, asked for {index}")


class FolderClip:
    """A clip stored as a folder of image files."""

    def __init__(self, path: Path, size: int, cache: FrameLRU | None = None) -> None:
        self.name, self.path, self.size = path.name, path, size
        self.files = frame_files(path)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.files)

    def frame(self, index: int) -> Image:
        _check_index(self.name, index, len(self))
        key = (str(self.path), index)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return cached
        frame = square_resize(_read_image(self.files[index]), self.size)
        if self.cache is not None:
            self.cache.put(key, frame)
        return frame


def _read_image(path: Path) -> Image:
    # imdecode on raw bytes also handles non-ASCII paths, which imread may not.
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode image {path}; is it a valid PNG or JPEG?")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


def _open_av(path: Path) -> Any:
    try:
        import av
    except ImportError as exc:
        raise ImportError(
            "reading video clips needs PyAV: pip install 'av>=14,<20' "
            "(or convert the clips to folders of frames)"
        ) from exc
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot open video {path}: {exc}") from exc


class VideoClip:
    """A clip stored as one video file, read by seeking with PyAV."""

    def __init__(self, path: Path, size: int, cache: FrameLRU | None = None) -> None:
        self.name, self.path, self.size = path.stem, path, size
        self.cache = cache if cache is not None else FrameLRU(64 * 2**20)
        self._pts: list[int] | None = None
        self._keyframes: list[int] = []

    def __len__(self) -> int:
        return len(self._index())

    def _index(self) -> list[int]:
        """Presentation timestamps of all frames, sorted; computed once."""
        if self._pts is None:
            with _open_av(self.path) as container:
                stream = container.streams.video[0]
                packets = [p for p in container.demux(stream) if p.size > 0]
            if any(p.pts is None for p in packets):
                raise ValueError(
                    f"{self.path} has packets without timestamps, so its frames cannot be "
                    "addressed; remux it (ffmpeg -i in -c copy out.mp4) or extract frames"
                )
            self._keyframes = sorted(p.pts for p in packets if p.is_keyframe)
            self._pts = sorted(p.pts for p in packets)
        return self._pts

    def frame(self, index: int) -> Image:
        pts = self._index()
        _check_index(self.name, index, len(pts))
        key = (str(self.path), index)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        return self._decode_to(index, pts)

    def _decode_to(self, index: int, pts: list[int]) -> Image:
        target = pts[index]
        start = bisect.bisect_right(self._keyframes, target) - 1
        seek_to = self._keyframes[max(start, 0)] if self._keyframes else pts[0]
        position = {p: i for i, p in enumerate(pts)}
        with _open_av(self.path) as container:
            stream = container.streams.video[0]
            container.seek(seek_to, backward=True, any_frame=False, stream=stream)
            for frame_pts, image in _decoded(container, stream):
                at = position.get(frame_pts)
                if at is None:
                    continue
                resized = square_resize(image, self.size)
                self.cache.put((str(self.path), at), resized)
                if at == index:
                    return resized
                if frame_pts > target:
                    break
        raise ValueError(f"frame {index} (pts {target}) of {self.path} could not be decoded")


def _decoded(container: Any, stream: Any) -> Iterator[tuple[int, Image]]:
    """Decoded frames with their timestamps; frames without one cannot be placed."""
    for frame in container.decode(stream):
        if frame.pts is not None:
            yield int(frame.pts), frame.to_ndarray(format="rgb24")


def open_clip(source: ClipSource, size: int, cache: FrameLRU | None = None) -> Clip:
    """The reader for ``source``."""
    if source.kind is ClipKind.VIDEO:
        return VideoClip(source.path, size, cache)
    return FolderClip(source.path, size, cache)
