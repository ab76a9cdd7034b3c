"""The whole loop with a real browser: headless Chromium sends a fake camera to
`vicocam serve`, plays the returned video, and drives the session's settings."""

from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("aiortc")

from benchmarks.browser import (
    BrowserRunConfig,
    run_browser_peer,
)
from networks.motion import MotionMode
from stages.reenact.live_settings import OutputMode
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.peers import browser_marks, sessions_settings, wait_for_message, wait_until_freed

pytestmark = browser_marks()


def write_png(path, width, height):
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 200, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def test_browser_gets_its_camera_back_and_the_controls_reach_the_settings(tmp_path):
    presets = tmp_path / "avatars"
    presets.mkdir()
    preset = write_png(presets / "preset.png", 96, 128)
    upload = write_png(tmp_path / "mine.png", 120, 160)
    session = SessionConfig(stall_timeout_s=2.0, watchdog_interval_s=0.2)
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", session=session,
                                       avatars_dir=presets))
    config = BrowserRunConfig(seconds=4.0, warmup_s=1.0, width=320, height=240, clip_s=3.0)
    seen: list[Any] = []

    def use_controls(page, thread):
        page.select_option("#avatar-select", "preset.png")
        wait_for_message(page, "preset")
        seen.append(sessions_settings(thread, server).avatar)
        page.set_input_files("#avatar-file", str(upload))
        wait_for_message(page, "160")
        page.locator("#strength").fill("1.5")
        wait_for_message(page, "strength 1.50")
        page.select_option("#mode-select", "relative")
        wait_for_message(page, "motion: relative")
        page.select_option("#output-select", "crop")
        wait_for_message(page, "showing")
        page.click("#reset")
        wait_for_message(page, "reset")
        seen.append(sessions_settings(thread, server))

    thread = ServerThread(server)
    with thread as url:
        result = run_browser_peer(url, config, interact=lambda page: use_controls(page, thread))
        sessions_left = wait_until_freed(server)

    assert result.frames_decoded > 0  # framesDecoded grew while measuring
    assert result.inbound.get("frameWidth") == 320
    # Each sample is a returned frame whose stamp matched a captured one: the
    # picture made the round trip intact, and most returned frames matched (the
    # page drops those it cannot place: static/latency.js).
    assert len(result.latencies) >= 10
    assert len(result.latencies) > result.latency_unmatched
    # Chromium's frame callback names each returned frame's receipt and its
    # presentation: a frame is presented after its last packet came.
    assert len(result.receive_to_present_ms) >= 10
    assert all(ms >= 0 for ms in result.receive_to_present_ms)
    assert len(result.display_estimate_ms) >= 10
    assert sessions_left == 0  # closing the browser freed the session
    assert not [e for e in result.console_errors if "could not start" in e]
    # The page's controls reached the session's LiveSettings box.
    assert seen[0].source == "upload:" + hashlib.sha256(preset.read_bytes()).hexdigest()
    final = seen[1]
    assert final.avatar.source == "upload:" + hashlib.sha256(upload.read_bytes()).hexdigest()
    assert final.avatar.image.shape == (160, 120, 3)
    assert (final.strength, final.mode, final.output, final.reset_count) == (
        1.5, MotionMode.RELATIVE, OutputMode.CROP, 1)
