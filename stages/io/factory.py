"""Turn a user's string (``pattern:640x480@30``, ``clip.mp4``, ``null``) into a component.

Named components live in a registry: a plain dict from a name to a factory
that receives the text after ``name:`` and the options. The defaults are
built fresh on every call (`default_source_registry`, `default_sink_registry`);
`stages.endpoints` adds the camera, the synthetic person and the virtual
camera to them. There is no module-level registry to mutate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pipeline.stage import Source, Stage
from stages.io.image import IMAGE_EXTENSIONS, ImageSource, ImageSourceConfig
from stages.io.null import NullSink, NullSinkConfig
from stages.io.pattern import PatternConfig, PatternSource
from stages.io.video import (
    VIDEO_EXTENSIONS,
    VIDEO_SINK_FORMATS,
    VideoFileSink,
    VideoFileSinkConfig,
    VideoFileSource,
    VideoFileSourceConfig,
)


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """Settings the command line may give any source; each source takes what applies.

    Attributes:
        fps: rate of a pattern, person or picture source (default 30); ignored by
            video files, which have their own.
        frames: stop after this many frames; ``None`` = the whole file, or
            endless for pattern, person and picture sources.
        size: ``(width, height)`` to produce; ``None`` = the source's own.
        loop: replay a video file from the start at its end.
        seed: picks the test pattern's picture.
    """

    fps: float | Fraction | None = None
    frames: int | None = None
    size: tuple[int, int] | None = None
    loop: bool = False
    seed: int = 0


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """Settings the command line may give any sink; each sink takes what applies.

    Attributes:
        fps: the output rate (a video file's time base, a virtual camera's format).
        crf / preset: H.264 quality and speed of a video file.
        size: ``(width, height)`` of a virtual camera; ``None`` = its default.
        pacing: ``"arrival"`` sends each frame as it comes (live runs, the
            runtime already paces); ``"fixed"`` paces a virtual camera to ``fps``.
        virtualcam_backend: a pyvirtualcam backend name; ``None`` = the platform's.
    """

    fps: float | Fraction = 30
    crf: int = 23
    preset: str = "veryfast"
    size: tuple[int, int] | None = None
    pacing: str = "arrival"
    virtualcam_backend: str | None = None


SourceFactory = Callable[[str, SourceOptions], Source]
"""Builds a source from the text after ``name:`` (``""`` if none) and the options."""

SinkFactory = Callable[[str, SinkOptions], Stage]
"""Builds a sink from the text after ``name:`` (``""`` if none) and the options."""

_PATTERN_ARG = re.compile(r"^(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?$")
_DEFAULT_FPS = 30


def _pattern(arg: str, options: SourceOptions) -> Source:
    """``pattern``, ``pattern:WxH``, ``pattern:@FPS`` or ``pattern:WxH@FPS``."""
    match = _PATTERN_ARG.match(arg)
    if match is None:
        raise ValueError(f"cannot parse pattern:{arg}; write pattern:WIDTHxHEIGHT@FPS, "
                         "e.g. pattern:640x480@30")
    width, height, fps = match.groups()
    size = (int(width), int(height)) if width else options.size or (640, 480)
    rate = Fraction(fps) if fps else options.fps or _DEFAULT_FPS
    config = PatternConfig(width=size[0], height=size[1], fps=rate,
                             frames=options.frames, seed=options.seed)
    return PatternSource(config)


def _null(arg: str, options: SinkOptions) -> Stage:
    return NullSink(NullSinkConfig())


def default_source_registry() -> dict[str, SourceFactory]:
    """A new dict of the built-in named sources: ``pattern``."""
    return {"pattern": _pattern}


def default_sink_registry() -> dict[str, SinkFactory]:
    """A new dict of the built-in named sinks: ``null``."""
    return {"null": _null}


def _source_forms(registry: Mapping[str, SourceFactory]) -> str:
    names = ", ".join(f"{name}[:...]" for name in sorted(registry))
    return (f"{names}, pattern:WIDTHxHEIGHT@FPS, a picture file "
            f"({' '.join(sorted(IMAGE_EXTENSIONS))}), or a video file "
            f"({' '.join(sorted(VIDEO_EXTENSIONS))} or any existing file FFmpeg reads)")


def _sink_forms(registry: Mapping[str, SinkFactory]) -> str:
    names = ", ".join(sorted(registry))
    return f"{names}, or a video file path ending in {', '.join(VIDEO_SINK_FORMATS)}"


def open_source(spec: str, options: SourceOptions | None = None,
                registry: Mapping[str, SourceFactory] | None = None) -> Source:
    """Build (not yet open) the source that ``spec`` names.

    Forms: a registry name with an optional ``:argument``
    (``pattern:640x480@30``), a picture file (by its ending), a video file
    (by its ending, or any other existing file). Raises `ValueError`
    listing the accepted forms for anything else. A missing file with a
    known ending is accepted here and reported by the source's ``open()``.
    """
    options = options or SourceOptions()
    registry = default_source_registry() if registry is None else registry
    name, _, arg = spec.partition(":")
    if name in registry:
        return registry[name](arg, options)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return ImageSource(ImageSourceConfig(path, fps=options.fps or _DEFAULT_FPS,
                                             frames=options.frames, size=options.size))
    if suffix in VIDEO_EXTENSIONS or path.is_file():
        return VideoFileSource(VideoFileSourceConfig(path, loop=options.loop, size=options.size,
                                                     frames=options.frames))
    raise ValueError(f"unknown source {spec!r}: no such file, and not a known source; "
                     f"accepted forms: {_source_forms(registry)}")


def open_sink(spec: str, options: SinkOptions | None = None,
              registry: Mapping[str, SinkFactory] | None = None) -> Stage:
    """Build (not yet start) the sink that ``spec`` names.

    Forms: a registry name with an optional ``:argument`` (``null``), or a
    video file path ending in ``.mp4``, ``.mkv`` or ``.mov``. Raises
    `ValueError` listing the accepted forms for anything else.
    """
    options = options or SinkOptions()
    registry = default_sink_registry() if registry is None else registry
    name, _, arg = spec.partition(":")
    if name in registry:
        return registry[name](arg, options)
    if Path(spec).suffix.lower() in VIDEO_SINK_FORMATS:
        return VideoFileSink(VideoFileSinkConfig(spec, fps=options.fps, crf=options.crf,
                                                 preset=options.preset))
    raise ValueError(f"unknown sink {spec!r}; accepted forms: {_sink_forms(registry)}")
