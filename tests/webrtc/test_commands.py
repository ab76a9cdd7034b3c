"""``vicocam serve`` / ``client`` / ``devices`` wiring through the real command line."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from pipeline.cli import main
from stages.camera.commands import device_report
from stages.io import VideoFileSource, VideoFileSourceConfig
from stages.stamp import read_stamp
from stages.webrtc.commands import load_transform
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from stages.webrtc.session import identity_factory


def test_client_command_round_trips_through_a_server(tmp_path, capsys):
    out = tmp_path / "back.mp4"
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1"))
    with ServerThread(server) as url:
        code = main(["client", "--server", url, "--source", "synthetic:160x120@30",
                     "--sink", str(out), "--seconds", "2", "--ice-host", "127.0.0.1"])
    assert code == 0
    assert "received" in capsys.readouterr().out
    source = VideoFileSource(VideoFileSourceConfig(out))
    source.open()
    stamps = []
    while (frame := source.read()) is not None:
        stamps.append(read_stamp(frame.image))
    source.close()
    assert len(stamps) > 5 and None not in stamps


def test_client_reports_a_missing_camera_clearly(capsys):
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1"))
    with ServerThread(server) as url:
        code = main(["client", "--server", url, "--camera", "/dev/vicocam-no-such-camera",
                     "--sink", "unused.mp4", "--seconds", "1", "--ice-host", "127.0.0.1"])
    err = capsys.readouterr().err
    assert code == 2 and "vicocam-no-such-camera" in err and "Traceback" not in err


def test_bad_arguments_are_user_errors(capsys):
    assert main(["client", "--server", "http://x:1", "--size", "big"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["serve", "--transform", "nothing"]) == 2
    assert "--transform" in capsys.readouterr().err
    assert main(["serve", "--max-sessions", "0"]) == 2


def test_transforms_load_by_name_or_path():
    assert load_transform("identity") is identity_factory
    assert load_transform("stages.webrtc.session:identity_factory") is identity_factory


def test_devices_lists_cameras_and_virtual_camera_backends(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "Cameras" in out and "Virtual cameras" in out
    assert device_report()[0].startswith("Cameras")
