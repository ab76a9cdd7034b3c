"""Sources and sinks for files and tests, and the factory that maps user strings to them.

Sources (`pipeline.stage.Source`): `PatternSource` (a moving test picture
with the frame index stamped), `ImageSource` (a still picture repeated),
`VideoFileSource` (any file FFmpeg reads). Sinks (last `StageBase` stages):
`VideoFileSink` (H.264 MP4/MKV/MOV), `NullSink` (counts frames). Each takes a
frozen config dataclass. `open_source` / `open_sink` build one from a string
such as ``pattern:640x480@30``, ``clip.mp4`` or ``null``.
"""

from stages.io.errors import SinkError, SourceError
from stages.io.factory import (
    SinkFactory,
    SinkOptions,
    SourceFactory,
    SourceOptions,
    default_sink_registry,
    default_source_registry,
    open_sink,
    open_source,
)
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

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VIDEO_SINK_FORMATS",
    "ImageSource",
    "ImageSourceConfig",
    "NullSink",
    "NullSinkConfig",
    "PatternConfig",
    "PatternSource",
    "SinkError",
    "SinkFactory",
    "SinkOptions",
    "SourceError",
    "SourceFactory",
    "SourceOptions",
    "VideoFileSink",
    "VideoFileSinkConfig",
    "VideoFileSource",
    "VideoFileSourceConfig",
    "default_sink_registry",
    "default_source_registry",
    "open_sink",
    "open_source",
]
