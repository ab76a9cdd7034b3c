from fractions import Fraction

import pytest

from pipeline.stage import SourceFrame, SourceInfo
from stages.io import (
    ImageSource,
    NullSink,
    PatternSource,
    SinkOptions,
    SourceError,
    SourceOptions,
    VideoFileSink,
    VideoFileSource,
    default_sink_registry,
    default_source_registry,
    open_sink,
    open_source,
)


def test_synthetic_defaults():
    source = open_source("pattern")
    assert isinstance(source, PatternSource)
    info = source.open()
    assert (info.width, info.height, info.frame_rate, info.frame_count) == (640, 480, 30, None)


def test_synthetic_size_and_rate_from_the_spec():
    source = open_source("pattern:320x240@12.5", SourceOptions(frames=4, seed=3))
    info = source.open()
    assert (info.width, info.height) == (320, 240)
    assert info.frame_rate == Fraction(25, 2) and info.frame_count == 4


def test_synthetic_takes_options_the_spec_leaves_out():
    info = open_source("pattern", SourceOptions(fps=15, size=(200, 100))).open()
    assert (info.width, info.height, info.frame_rate) == (200, 100, 15)


@pytest.mark.parametrize("spec", ["pattern:big", "pattern:640x", "pattern:@fast"])
def test_bad_synthetic_spec_shows_the_form(spec):
    with pytest.raises(ValueError, match="pattern:WIDTHxHEIGHT@FPS"):
        open_source(spec)


def test_picture_path_gives_an_image_source(shared_media):
    source = open_source(str(shared_media / "monroe.png"), SourceOptions(frames=2, fps=5))
    assert isinstance(source, ImageSource)
    assert source.open().frame_rate == 5


def test_video_path_gives_a_video_source(shared_media):
    source = open_source(str(shared_media / "driving2.mp4"),
                         SourceOptions(frames=3, size=(64, 64)))
    assert isinstance(source, VideoFileSource)
    info = source.open()
    assert (info.width, info.height, info.frame_count) == (64, 64, 3)
    source.close()


def test_missing_video_path_is_reported_when_opened(tmp_path):
    source = open_source(str(tmp_path / "later.mkv"))
    with pytest.raises(SourceError, match="not found"):
        source.open()


@pytest.mark.parametrize("spec", ["foo", "camera:0", "/no/such/thing"])
def test_unknown_source_lists_the_accepted_forms(spec):
    with pytest.raises(ValueError, match=r"unknown source .*accepted forms: pattern") as err:
        open_source(spec)
    assert ".png" in str(err.value) and ".mp4" in str(err.value)


def test_sources_extend_through_a_registry_passed_in():
    class Still:
        name = "still"

        def __init__(self, arg: str) -> None:
            self.arg = arg

        def open(self) -> SourceInfo:
            return SourceInfo(2, 2, None)

        def read(self) -> SourceFrame | None:
            return None

        def close(self) -> None:
            return None

    registry = default_source_registry()
    registry["camera"] = lambda arg, options: Still(arg)
    source = open_source("camera:0", registry=registry)
    assert isinstance(source, Still) and source.arg == "0"
    assert "camera" not in default_source_registry()  # the defaults are built fresh


def test_null_sink():
    assert isinstance(open_sink("null"), NullSink)


@pytest.mark.parametrize("suffix", [".mp4", ".MKV", ".mov"])
def test_video_path_gives_a_file_sink(tmp_path, suffix):
    sink = open_sink(str(tmp_path / f"out{suffix}"), SinkOptions(fps=24, crf=30))
    assert isinstance(sink, VideoFileSink)
    assert (sink.config.fps, sink.config.crf) == (24, 30)


@pytest.mark.parametrize("spec", ["foo", "out.avi", "webrtc"])
def test_unknown_sink_lists_the_accepted_forms(spec):
    with pytest.raises(ValueError, match=r"unknown sink .*accepted forms: null, .*\.mp4, "
                                         r"\.mkv, \.mov"):
        open_sink(spec)


def test_sinks_extend_through_a_registry_passed_in():
    class Recorder(NullSink):
        """A stand-in for a later sink kind."""

    registry = default_sink_registry()
    registry["record"] = lambda arg, options: Recorder()
    sink = open_sink("record:x", registry=registry)
    assert isinstance(sink, Recorder)
    with pytest.raises(ValueError, match="record"):
        open_sink("other", registry=registry)
