"""The whole loop with a real browser: headless Chromium sends a stamped fake camera to
`vicocam serve`, plays the returned video, and reads the stamps back for latency."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("aiortc")

from stages.webrtc.browser import (
    INSTALL_HINT,
    BrowserRunConfig,
    find_chromium,
    playwright_available,
    run_browser_peer,
)
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from stages.webrtc.session import SessionConfig

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason=f"no Chromium; {INSTALL_HINT}"),
    pytest.mark.skipif(not playwright_available(), reason=f"no playwright; {INSTALL_HINT}"),
]


def test_browser_gets_its_camera_back_and_latency_is_measured():
    session = SessionConfig(stall_timeout_s=2.0, watchdog_interval_s=0.2)
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", session=session))
    config = BrowserRunConfig(seconds=4.0, warmup_s=1.0, width=320, height=240, clip_s=3.0)
    with ServerThread(server) as url:
        result = run_browser_peer(url, config)
        deadline = time.monotonic() + 30
        while server.sessions and time.monotonic() < deadline:
            time.sleep(0.1)
        sessions_left = len(server.sessions)

    assert result.frames_decoded > 0  # framesDecoded grew while measuring
    assert result.inbound.get("frameWidth") == 320
    # Each sample is a returned frame whose stamp matched a captured one: the
    # picture made the round trip intact.
    assert len(result.latencies) >= 10
    assert all(ms > 0 for _, ms in result.latencies)
    assert sessions_left == 0  # closing the browser freed the session
    assert not [e for e in result.console_errors if "could not start" in e]
