"""One endpoint registry: every named source and sink, and how long each source runs."""

from __future__ import annotations

import pytest

from stages.camera import CameraSource
from stages.endpoints import (
    SourceKind,
    endpoint_report,
    is_endless,
    open_sink,
    open_source,
    sink_factories,
    source_factories,
    source_kind,
)
from stages.io import NullSink, PatternSource, SinkOptions, SourceOptions, VideoFileSink
from stages.io.image import ImageSource
from stages.io.video import VideoFileSource
from stages.reenact.person import PersonSource
from stages.virtualcam import VirtualCamSink


def test_the_registry_names_every_source_and_sink():
    assert set(source_factories()) == {"pattern", "person", "camera"}
    assert set(sink_factories()) == {"null", "virtualcam"}


@pytest.mark.parametrize(("spec", "kind", "cls"), [
    ("pattern:320x240@15", SourceKind.GENERATED, PatternSource),
    ("person:2", SourceKind.GENERATED, PersonSource),
    ("camera:1", SourceKind.DEVICE, CameraSource),
    ("camera:/dev/video4", SourceKind.DEVICE, CameraSource),
    ("portrait.JPG", SourceKind.PICTURE, ImageSource),
    ("talk.mp4", SourceKind.FILE, VideoFileSource),
])
def test_each_form_opens_its_source_and_has_its_kind(spec, kind, cls):
    assert source_kind(spec) is kind
    assert isinstance(open_source(spec, SourceOptions(fps=15)), cls)
    assert is_endless(spec) is (kind is not SourceKind.FILE)
    assert is_endless(spec, loop=True)


def test_person_and_camera_take_their_number_rate_and_size():
    person = open_source("person:3", SourceOptions(fps=12, frames=5, size=(320, 240)))
    assert isinstance(person, PersonSource)
    c = person.config
    assert (c.identity, c.fps, c.frames, c.width, c.height) == (3, 12, 5, 320, 240)
    camera = open_source("camera:/dev/video4", SourceOptions(fps=25, size=(1280, 720)))
    assert isinstance(camera, CameraSource)
    assert (camera.config.device, camera.config.width, camera.config.height,
            camera.config.fps) == ("/dev/video4", 1280, 720, 25)
    assert open_source("camera").config.device == 0  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="person:N"):
        open_source("person:two")


def test_sinks_take_their_device_size_pacing_and_backend():
    sink = open_sink("virtualcam:/dev/video10", SinkOptions(
        fps=25, size=(320, 240), pacing="fixed", virtualcam_backend="obs"))
    assert isinstance(sink, VirtualCamSink)
    c = sink.config
    assert (c.device, c.width, c.height, c.fps, c.pacing, c.backend) == (
        "/dev/video10", 320, 240, 25, "fixed", "obs")
    assert open_sink("virtualcam").config.device is None  # type: ignore[attr-defined]
    assert isinstance(open_sink("null"), NullSink)
    assert isinstance(open_sink("out.mkv"), VideoFileSink)
    with pytest.raises(ValueError, match="null, virtualcam"):
        open_sink("printer")


def test_the_report_lists_cameras_and_virtual_cameras():
    lines = endpoint_report()
    assert lines[0].startswith("Cameras")
    assert any(line.startswith("Virtual cameras") for line in lines)
    assert any(line.strip().startswith("backends:") for line in lines)
