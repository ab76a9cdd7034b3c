"""Video files in and out through PyAV (FFmpeg): `VideoFileSource`, `VideoFileSink`.

Reading accepts any container and codec the bundled FFmpeg decodes. Damage
inside a file does not crash the run: a packet the decoder rejects is skipped
with a warning (the picture recovers at the next keyframe), and the stream
ends, keeping every frame delivered so far, after `max_bad_packets` rejected
packets in a row or a container error (a decoded frame FFmpeg cannot convert
to RGB is skipped the same way). Tags that are not UTF-8 are read with
replacement characters; a loop over a file that cannot seek back ends there.
A file that cannot be opened at all (missing, not a video, no video stream,
no decoder for it) raises `SourceError` from ``open()``.

Writing is H.264 (libx264, yuv420p) in MP4, MKV or MOV. The output goes to
``<name>.partial`` first and is renamed to its final name in ``stop()``, which
the runtime calls also after errors: a finished or interrupted run keeps what
it wrote, and a crash that never reaches ``stop()`` leaves only the
``.partial`` file, never a truncated file under the final name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import av
import cv2
import numpy as np
from av.container import InputContainer, OutputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from pipeline.frame import Frame, Image, check_image
from pipeline.stage import SourceFrame, SourceInfo, StageBase, as_fraction
from stages.io.av_convert import RgbConverter
from stages.io.errors import SinkError, SourceError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".y4m", ".ts"})
"""File endings the source factory treats as video (`VideoFileSource` reads any FFmpeg input)."""

VIDEO_SINK_FORMATS: Mapping[str, str] = MappingProxyType(
    {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
)
"""Output file ending -> FFmpeg muxer, for `VideoFileSink`."""

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast",
                "medium", "slow", "slower", "veryslow", "placebo")

_OUT_TIME_BASE = Fraction(1, 90_000)  # fine enough for any source's timestamps


# --------------------------------------------------------------------------- source


@dataclass(frozen=True, slots=True)
class VideoFileSourceConfig:
    """Settings of `VideoFileSource`.

    Attributes:
        path: the video file.
        loop: start again from the beginning at the end of the file, forever;
            ``pts`` keeps increasing across loops.
        size: ``(width, height)`` to scale every frame to, or ``None`` for the
            stream's own size.
        frames: stop after this many frames; ``None`` reads the whole file
            (or forever when looping).
        threads: decoder threads; 0 lets FFmpeg choose.
        max_bad_packets: packets in a row the decoder may reject (or decoded
            frames in a row that cannot be converted to RGB) before the
            stream is ended (see the module docstring).
        max_pixels: largest frame (width x height) the decoder may produce;
            8K UHD by default. A file whose stream declares more is refused at
            ``open()``, and the decoder rejects larger frames as damaged
            packets, so a few damaged bytes cannot make it allocate gigabytes.
        name: source name in the graph.
    """

    path: Path | str
    loop: bool = False
    size: tuple[int, int] | None = None
    frames: int | None = None
    threads: int = 0
    max_bad_packets: int = 10
    max_pixels: int = 7680 * 4320
    name: str = "video_file"

    def __post_init__(self) -> None:
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"video source size must be positive (width, height), got {self.size}")
        if self.frames is not None and self.frames < 0:
            raise ValueError(f"video source frames must be >= 0 or None, got {self.frames}")
        if self.threads < 0:
            raise ValueError(f"video source threads must be >= 0 (0 = auto), got {self.threads}")
        if self.max_bad_packets < 1:
            raise ValueError(f"max_bad_packets must be >= 1, got {self.max_bad_packets}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")


def _open_input(path: Path, config: VideoFileSourceConfig) -> tuple[InputContainer, VideoStream]:
    """Open ``path`` and its first video stream, or raise `SourceError` saying why."""
    if not path.is_file():
        raise SourceError(f"video file not found: {path}; check the path")
    container = _open_container(path)
    stream = container.streams.video[0] if container.streams.video else None
    refusal = _refusal(path, stream, config.max_pixels)
    if refusal or stream is None:
        container.close()
        raise SourceError(refusal)
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = config.threads
    # Checked by the decoder before it allocates a frame (FFmpeg's AVCodecContext.max_pixels).
    stream.codec_context.options = {"max_pixels": str(config.max_pixels)}
    return container, stream


def _refusal(path: Path, stream: VideoStream | None, max_pixels: int) -> str:
    """Why ``stream`` cannot be read (``""``: it can)."""
    if stream is None:
        return f"{path} has no video stream (is it an audio file?); give a video file"
    context = stream.codec_context
    if context is None:
        return (f"{path}: no decoder for its video stream (damaged, or a codec this FFmpeg "
                "build lacks); give an .mp4, .mkv, .mov or .webm video")
    if context.width * context.height > max_pixels:
        return (f"{path}: its frames are {context.width}x{context.height}, more than the "
                f"{max_pixels} pixels this source accepts (damaged, or raise max_pixels)")
    return ""


def _open_container(path: Path) -> InputContainer:
    try:
        # Tags are UTF-8 only by convention: a damaged or foreign file's bytes are not.
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise SourceError(
            f"cannot read {path} as a video ({exc}); give a video file FFmpeg can "
            "decode, such as .mp4, .mkv, .mov or .webm"
        ) from exc


def _stream_rate(stream: VideoStream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate else None


class VideoFileSource:
    """Frames of a video file as ``(H, W, 3)`` uint8 RGB, with the stream's timestamps.

    ``pts`` and ``time_base`` come from the stream (``pts`` continues to grow
    across loops; a frame without a timestamp gets the previous one plus one
    frame). `SourceInfo` reports the stream's average frame rate (else
    FFmpeg's guess) and its frame count when the container records one and
    the source neither loops nor is cut short. Not self-paced.
    """

    def __init__(self, config: VideoFileSourceConfig) -> None:
        self.config = config
        self.name = config.name
        self._container: InputContainer | None = None
        self._stream: VideoStream | None = None
        self._decoded: Iterator[VideoFrame] = iter(())
        self._step = 1  # one frame, in stream time-base units
        self._emitted = 0
        self._rgb = RgbConverter()
        self._pass_frames = 0
        self._offset = 0  # added to the stream's pts, grows on every loop
        self._last_pts: int | None = None
        self._rebase = False
        # The runtime may call close() from another thread while a read() is in
        # flight; FFmpeg must not free the container under a running decode.
        self._lock = threading.Lock()
        self._closed = False

    def open(self) -> SourceInfo:
        self.close()
        container, stream = _open_input(Path(self.config.path), self.config)
        with self._lock:
            self._container, self._stream, self._closed = container, stream, False
            return self._start(container, stream)

    def _start(self, container: InputContainer, stream: VideoStream) -> SourceInfo:
        self._decoded = self._decode(container, stream)
        rate = _stream_rate(stream)
        if rate and stream.time_base:
            self._step = max(1, round(1 / (rate * stream.time_base)))
        self._emitted = self._pass_frames = self._offset = 0
        self._last_pts, self._rebase = None, False
        width, height = self.config.size or (stream.codec_context.width,
                                             stream.codec_context.height)
        return SourceInfo(width, height, rate, self_paced=False, frame_count=self._count(stream))

    def _count(self, stream: VideoStream) -> int | None:
        limit = self.config.frames
        if self.config.loop:
            return limit
        known = stream.frames if stream.frames > 0 else None  # 0: not recorded
        if limit is None or known is None:
            return known if limit is None else None
        return min(known, limit)

    def read(self) -> SourceFrame | None:
        """The next frame; ``None`` at the end of the stream or after `close`."""
        with self._lock:
            if self._closed:
                return None
            return self._read_locked()

    def _read_locked(self) -> SourceFrame | None:
        if self._stream is None:
            raise RuntimeError(f"{self.name}: read() before open()")
        if self.config.frames is not None and self._emitted >= self.config.frames:
            return None
        for _ in range(self.config.max_bad_packets):
            frame = self._next_frame()
            if frame is None:
                return None
            image = self._picture(frame)
            if image is not None:
                self._emitted += 1
                return SourceFrame(image, pts=self._timeline(frame.pts),
                                   time_base=self._stream.time_base)
        logger.warning("%s: %d frames in a row could not be converted; ending the stream "
                       "after %d frames", self.name, self.config.max_bad_packets, self._emitted)
        self._decoded, self._pass_frames = iter(()), 0  # an empty pass: no rewind
        return None

    def _picture(self, frame: VideoFrame) -> Image | None:
        """The frame as RGB; ``None`` (logged) for a frame FFmpeg cannot convert."""
        try:
            return self._to_rgb(frame)
        except av.FFmpegError as exc:
            logger.warning("%s: skipping a frame of %s that cannot be converted to RGB (%s)",
                           self.name, self.config.path, exc)
            return None

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
            self._container = self._stream = None
            self._decoded = iter(())
            self._closed = True

    def _next_frame(self) -> VideoFrame | None:
        while True:
            frame = next(self._decoded, None)
            if frame is not None:
                self._pass_frames += 1
                return frame
            # An empty pass would loop forever without producing anything.
            if not self.config.loop or self._pass_frames == 0 or not self._rewind():
                return None

    def _rewind(self) -> bool:
        """Start the next pass; ``False`` (logged) when the file cannot seek to its start."""
        if self._container is None or self._stream is None:
            raise RuntimeError(f"{self.name}: rewind on a closed source")
        try:
            self._container.seek(0)
        except av.FFmpegError as exc:
            logger.warning("%s: cannot seek back to the start of %s (%s); ending the stream "
                           "after %d frames", self.name, self.config.path, exc, self._emitted)
            return False
        self._decoded = self._decode(self._container, self._stream)
        self._pass_frames = 0
        self._rebase = True
        return True

    def _decode(self, container: InputContainer, stream: VideoStream) -> Iterator[VideoFrame]:
        """Decoded frames of one pass; skips rejected packets, ends on container errors."""
        bad = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    bad += 1
                    logger.warning("%s: skipping a damaged packet in %s (%s)",
                                   self.name, self.config.path, exc)
                    if bad >= self.config.max_bad_packets:
                        logger.warning("%s: %d damaged packets in a row; ending the stream "
                                       "after %d frames", self.name, bad, self._emitted)
                        return
                    continue
                bad = 0
                yield from frames
        except av.FFmpegError as exc:
            logger.warning("%s: cannot read past this point of %s (%s); ending the stream "
                           "after %d frames", self.name, self.config.path, exc, self._emitted)

    def _timeline(self, raw: int | None) -> int:
        """The stream's pts made monotonic across loops (and filled in when absent)."""
        if raw is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        else:
            if self._rebase and self._last_pts is not None:
                self._offset = self._last_pts + self._step - raw
            pts = raw + self._offset
        self._rebase = False
        self._last_pts = pts
        return pts

    def _to_rgb(self, frame: VideoFrame) -> Image:
        size = self.config.size
        if size is None or size == (frame.width, frame.height):
            image = self._rgb(frame)
        else:
            shrink = size[0] * size[1] < frame.width * frame.height
            image = self._rgb(frame, size[0], size[1], "AREA" if shrink else "BICUBIC")
        return check_image(image, what=f"{self.name} frame {self._emitted}")


# --------------------------------------------------------------------------- sink


@dataclass(frozen=True, slots=True)
class VideoFileSinkConfig:
    """Settings of `VideoFileSink`.

    Attributes:
        path: output file; its ending picks the container (`VIDEO_SINK_FORMATS`).
        fps: nominal rate, and the spacing of frames that carry no ``pts``.
        crf: x264 constant rate factor, 0 (lossless) to 51; 18-28 is usual.
        preset: x264 speed/size trade-off (`X264_PRESETS`).
        threads: encoder threads; 0 lets x264 choose.
        name: stage name in the graph.
    """

    path: Path | str
    fps: float | Fraction = 30
    crf: int = 23
    preset: str = "veryfast"
    threads: int = 0
    name: str = "video_file_sink"

    def __post_init__(self) -> None:
        suffix = Path(self.path).suffix.lower()
        if suffix not in VIDEO_SINK_FORMATS:
            raise ValueError(
                f"cannot write video to {self.path}: unknown file ending {suffix!r}; "
                f"use one of {', '.join(VIDEO_SINK_FORMATS)}"
            )
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be within 0-51 (lower is better quality), got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"unknown x264 preset {self.preset!r}; use one of {X264_PRESETS}")
        if self.fps <= 0:
            raise ValueError(f"video sink fps must be > 0, got {self.fps}")
        if self.threads < 0:
            raise ValueError(f"video sink threads must be >= 0 (0 = auto), got {self.threads}")


def partial_path(path: Path) -> Path:
    """Where `VideoFileSink` writes ``path`` until the file is finalised."""
    return path.with_name(path.name + ".partial")


class VideoFileSink(StageBase):
    """Writes every frame's picture to an H.264 file; returns the frame unchanged.

    The picture size is fixed by the first frame (an odd last row or column
    is dropped, as yuv420p needs even sizes); a later frame of another size
    is resized to it, with one warning per new size, rather than failing a
    long render. Timestamps:
    from the frame's ``pts``/``time_base`` when present (so a variable-rate
    source keeps its timing), counted from the first frame; else one
    ``1/fps`` after the previous frame. Timestamps that do not increase are
    nudged forward, as the encoder requires.

    ``frames_written`` counts encoded frames; ``frames_resized`` those that
    had to be scaled. See the module docstring for the ``.partial`` file.
    """

    def __init__(self, config: VideoFileSinkConfig) -> None:
        self.config = config
        self.name = config.name
        self.path = Path(config.path)
        self.partial_path = partial_path(self.path)
        self.frames_written = 0
        self.frames_resized = 0
        self._container: OutputContainer | None = None
        self._stream: VideoStream | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the output
        self._first_size: tuple[int, int] | None = None  # of the first frame, maybe odd
        self._warned_sizes: set[tuple[int, int]] = set()
        self._step = round(1 / (as_fraction(config.fps) * _OUT_TIME_BASE))
        self._origin: Fraction | None = None  # pts of the first timed frame, seconds
        self._last_pts: int | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fmt = VIDEO_SINK_FORMATS[self.path.suffix.lower()]
        try:
            self._container = av.open(str(self.partial_path), mode="w", format=fmt)
        except (av.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot create {self.partial_path}: {exc}") from exc

    def process(self, frame: Frame) -> Frame:
        if self._container is None:
            raise RuntimeError(f"{self.name}: process() before start() or after stop()")
        image = check_image(frame.image, what=f"{self.name} input frame {frame.seq}")
        stream = self._stream or self._add_stream(self._container, image)
        video_frame = VideoFrame.from_ndarray(self._fit(image, frame.seq), format="rgb24")
        video_frame.pts = self._next_pts(frame)
        video_frame.time_base = _OUT_TIME_BASE
        for packet in stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1
        return frame

    def stop(self) -> None:
        container, stream = self._container, self._stream
        self._container = self._stream = None
        if container is None:
            return
        try:
            self._finalise(container, stream)
        except av.FFmpegError as exc:
            raise SinkError(
                f"could not finalise {self.path} ({exc}); what was written is in "
                f"{self.partial_path}"
            ) from exc
        if self.frames_written == 0:
            self.partial_path.unlink(missing_ok=True)
            logger.warning("%s: no frames arrived; %s was not written", self.name, self.path)
            return
        self.partial_path.replace(self.path)
        logger.info("%s: wrote %d frames to %s", self.name, self.frames_written, self.path)

    @staticmethod
    def _finalise(container: OutputContainer, stream: VideoStream | None) -> None:
        """Drain the encoder and write the trailer; the container is closed either way."""
        try:
            if stream is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
        finally:
            container.close()

    def _add_stream(self, container: OutputContainer, image: Image) -> VideoStream:
        height, width = image.shape[:2]
        even = (max(2, width - width % 2), max(2, height - height % 2))
        if even != (width, height):
            logger.info("%s: %dx%d is odd; writing %dx%d (yuv420p needs even sizes)",
                        self.name, width, height, *even)
        try:
            stream = container.add_stream("libx264", rate=as_fraction(self.config.fps))
        except (av.FFmpegError, ValueError) as exc:
            raise SinkError(f"this PyAV build has no libx264 encoder ({exc}); install the "
                            "'av' wheel from PyPI, which bundles it") from exc
        stream.width, stream.height = even
        stream.pix_fmt = "yuv420p"
        stream.time_base = _OUT_TIME_BASE
        stream.codec_context.time_base = _OUT_TIME_BASE
        stream.codec_context.thread_count = self.config.threads
        stream.options = {"crf": str(self.config.crf), "preset": self.config.preset}
        self._stream, self._size, self._first_size = stream, even, (width, height)
        return stream

    def _fit(self, image: Image, seq: int) -> Image:
        """``image`` at the output size: cropped by the odd row/column, or resized."""
        height, width = image.shape[:2]
        if self._size is None or (width, height) == self._size:
            return image
        if (width, height) == self._first_size:
            # Only rounding to even differs: drop the last row/column rather than resample.
            return np.ascontiguousarray(image[: self._size[1], : self._size[0]])
        self.frames_resized += 1
        if (width, height) not in self._warned_sizes:
            self._warned_sizes.add((width, height))
            logger.warning("%s: frame %d is %dx%d, the file is %dx%d; resizing it",
                           self.name, seq, width, height, *self._size)
        shrink = self._size[0] * self._size[1] < width * height
        resized = cv2.resize(image, self._size,
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return np.asarray(resized, dtype=np.uint8)

    def _next_pts(self, frame: Frame) -> int:
        if frame.pts is not None:
            seconds = frame.pts * frame.time_base
            if self._origin is None:
                self._origin = seconds
            pts = round((seconds - self._origin) / _OUT_TIME_BASE)
        else:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts
