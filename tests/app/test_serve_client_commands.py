"""``vicocam serve`` / ``client`` / ``devices`` wiring through the real command line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("aiortc")

from pipeline.app.cli import build_parser, main
from pipeline.app.commands.serve import build_server
from pipeline.errors import UserError
from stages.endpoints import endpoint_report
from stages.io import VideoFileSource, VideoFileSourceConfig
from stages.reenact.live_settings import AvatarKey, LiveSettings, OutputMode
from stages.reenact.shared_sessions import SessionFactory
from stages.stamp import read_stamp
from stages.webrtc.peer_session import identity_factory
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer


def test_client_command_round_trips_through_a_server_and_prints_its_notice(tmp_path, capsys):
    out = tmp_path / "back.mp4"
    notice = "this model knows only vicocam's synthetic world"
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", notice=notice))
    with ServerThread(server) as url:
        code = main(["client", "--server", url, "--source", "pattern:160x120@30",
                     "--sink", str(out), "--seconds", "2", "--ice-host", "127.0.0.1",
                     "--network", "loss=1%,delay=5ms"])
    assert code == 0
    captured = capsys.readouterr()
    assert "received" in captured.out
    assert "vicocam: network loss=1%,delay=5ms: sent " in captured.out
    assert f"vicocam: warning from the server: {notice}\n" in captured.err
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
    assert main(["client", "--server", "http://x:1", "--network", "speed=1mbit"]) == 2
    assert "--network knows no 'speed'" in capsys.readouterr().err
    assert main(["serve", "--max-sessions", "0"]) == 2
    assert main(["serve", "--avatars", "no-such-folder", "--identity"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_client_calls_again_unless_told_not_to():
    parse = build_parser().parse_args
    assert parse(["client", "--server", "http://x:1"]).reconnect is True
    assert parse(["client", "--server", "http://x:1", "--no-reconnect"]).reconnect is False


def serve_args(*extra):
    return build_parser().parse_args(["serve", "--port", "0", *extra])


@pytest.fixture
def no_bundled_model(monkeypatch, tmp_path):
    """Random weights whatever networks/pretrained/ holds; exports go to a temporary cache."""
    monkeypatch.setattr("trt_engines.bundle.bundled_checkpoint", lambda: None)
    monkeypatch.setenv("VICOCAM_CACHE", str(tmp_path / "cache"))


def test_serve_identity_loads_no_model():
    server, service = build_server(serve_args("--identity"))
    assert service is None and server.factory is identity_factory
    assert server.prepare_avatar is None
    assert server.config.notice is None  # no model, nothing to warn about


def test_serve_with_the_synthetic_model_warns_at_start_and_on_the_page(tmp_path, monkeypatch,
                                                                      capsys):
    import asyncio

    from tests.webrtc.peers import api_client

    monkeypatch.setenv("VICOCAM_CACHE", str(tmp_path / "cache"))
    server, service = build_server(serve_args("--backend", "torch"))
    assert service is not None
    try:
        warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
        notice = server.config.notice
        assert notice is not None and warnings == [f"vicocam: warning: {notice}"]
        assert "synthetic world" in notice and "github.com/wyhsirius/LIA" in notice
        assert notice.endswith("vicocam serve --checkpoint models/vox.pt --avatar me.jpg")

        async def page_config():
            async with api_client(server.build_app()) as client:
                return await (await client.get("/api/config")).json()

        assert asyncio.run(page_config())["notice"] == notice
    finally:
        service.close()


def test_serve_sets_the_browsers_playout_delay_and_upload_bitrates():
    from stages.webrtc.aiortc_patches import PlayoutDelay

    default = build_server(serve_args("--identity"))[0].config.session
    assert default.playout_delay == PlayoutDelay(0, 0)
    assert (default.start_bitrate_kbps, default.min_remb_bps) == (1000, 300_000)
    chosen = build_server(serve_args("--identity", "--playout-delay", "20:100",
                                     "--upload-start-kbps", "0", "--upload-floor-kbps", "500")
                          )[0].config.session
    assert chosen.playout_delay == PlayoutDelay(20, 100)
    assert (chosen.start_bitrate_kbps, chosen.min_remb_bps) == (None, 500_000)
    off = build_server(serve_args("--identity", "--playout-delay", "browser",
                                  "--upload-floor-kbps", "0"))[0].config.session
    assert off.playout_delay is None and off.min_remb_bps is None


def test_serve_encodes_the_returned_video_in_the_sink_unless_told_otherwise():
    assert build_server(serve_args("--identity"))[0].config.session.encode_in_sink
    aiortc = build_server(serve_args("--identity", "--encode-in", "aiortc"))[0].config.session
    assert not aiortc.encode_in_sink


def test_serve_passes_allowed_host_names_to_the_server():
    assert build_server(serve_args("--identity"))[0].config.allowed_hosts == ()
    server = build_server(serve_args("--identity", "--allow-host", "vicocam.test",
                                     "--allow-host", "gpu-box.local"))[0]
    assert server.config.allowed_hosts == ("vicocam.test", "gpu-box.local")
    with pytest.raises(UserError, match="allowed hosts"):
        build_server(serve_args("--identity", "--allow-host", "http://gpu-box/"))


@pytest.mark.parametrize("flags", [["--playout-delay", "soon"], ["--playout-delay", "15"],
                                   ["--upload-floor-kbps", "-1"], ["--upload-start-kbps", "-5"]])
def test_serve_refuses_bad_webrtc_tuning_as_user_errors(flags):
    with pytest.raises(UserError):
        build_server(serve_args("--identity", *flags))


def test_serve_loads_the_model_once_and_starts_sessions_on_the_avatar(no_bundled_model, capsys):
    server, service = build_server(serve_args("--backend", "torch", "--output-mode", "crop"))
    assert service is not None
    try:
        err = capsys.readouterr().err
        assert "RANDOM" in err and "--checkpoint" in err  # as loud as vicocam run
        assert server.config.notice is None  # random weights model no world at all
        factory = server.factory
        assert isinstance(factory, SessionFactory) and factory.bundle is service.bundle
        start = server.config.settings
        assert start == LiveSettings(avatar=AvatarKey("person:1"), output=OutputMode.CROP)
        assert len(factory.avatars) == 1  # the default avatar was prepared at start
        assert server.prepare_avatar == factory.prepare  # uploads are checked by the model
    finally:
        service.close()


def test_serve_fails_at_start_on_an_avatar_without_a_face(no_bundled_model, tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(UserError, match="no face"):
        build_server(serve_args("--backend", "torch", "--avatar", str(blank)))
    with pytest.raises(UserError, match="not found"):
        build_server(serve_args("--checkpoint", str(tmp_path / "missing.safetensors")))


def test_devices_lists_cameras_and_virtual_camera_backends(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "Cameras" in out and "Virtual cameras" in out
    assert endpoint_report()[0].startswith("Cameras")
