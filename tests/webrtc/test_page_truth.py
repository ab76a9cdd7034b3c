"""The page tells its user the truth, in headless Chromium: its capture -> display figure
for any camera (not only the stamped test camera), the avatar actually in use, and its
controls travelling on the session's data channel."""

from __future__ import annotations

import re
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("aiortc")

from stages.reenact.live_settings import AvatarKey, LiveSettings, OutputMode
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.peers import browser_marks, wait_for_message

pytestmark = browser_marks()

SESSION = SessionConfig(stall_timeout_s=3.0, watchdog_interval_s=0.2)
LATENCY_ROW = "document.getElementById('stat-latency').textContent"


@contextmanager
def page_of(server: WebRTCServer, camera: Path | None = None) -> Iterator[Any]:
    """A started page of ``server`` in Chromium; its fake camera plays ``camera`` (a .y4m)
    or, without one, Chromium's own test picture (no stamp)."""
    from playwright.sync_api import sync_playwright

    from benchmarks.browser import CHROMIUM_ARGS, find_chromium

    args = list(CHROMIUM_ARGS)
    if camera is not None:
        args.append(f"--use-file-for-fake-video-capture={camera}")
    with ServerThread(server) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True, args=args)
        try:
            page = browser.new_page()
            page.goto(url + "?autostart=1")
            page.wait_for_function("window.vicocam && (window.vicocam.error || "
                                   "(window.vicocam.control && window.vicocam.control.open))",
                                   timeout=60_000)
            assert page.evaluate("window.vicocam.error") is None
            yield page
        finally:
            browser.close()


def identity_server(**config) -> WebRTCServer:
    return WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", session=SESSION, **config))


def test_an_unstamped_camera_gets_a_capture_to_display_figure():
    with page_of(identity_server()) as page:
        page.wait_for_function(f"/^[0-9]+ ms/.test({LATENCY_ROW})", timeout=30_000)
        row = page.evaluate(LATENCY_ROW)
        matched = page.evaluate("window.vicocam.rtpLatencies.length")
        stamped = page.evaluate("window.vicocam.latencies.length")
    figure = int(re.match(r"(\d+) ms \(median\)", row).group(1))
    assert 0 < figure < 1000, row
    assert matched >= 10
    assert stamped == 0  # Chromium's own picture carries no stamp: the figure is the RTP one


def stamped_clip(folder: Path) -> Path:
    from benchmarks.browser import write_stamped_y4m

    return write_stamped_y4m(folder / "camera.y4m", 320, 240, 30, 90)


def both_measures(page, seconds: float = 6.0) -> tuple[dict[float, float], dict[float, float]]:
    """``{display time: ms}`` of the returned frames, by RTP timestamp and by stamp."""
    page.wait_for_timeout(seconds * 1000)
    pick = "s => [Math.round(s.t * 10) / 10, s.ms]"
    rtp = page.evaluate(f"window.vicocam.rtpLatencies.map({pick})")
    stamp = page.evaluate(f"window.vicocam.latencies.map({pick})")
    return dict(map(tuple, rtp)), dict(map(tuple, stamp))


def test_the_rtp_figure_agrees_with_the_stamp_frame_by_frame():
    with tempfile.TemporaryDirectory() as tmp, \
            page_of(identity_server(), stamped_clip(Path(tmp))) as page:
        rtp, stamp = both_measures(page)
    shown_both = sorted(set(rtp) & set(stamp))
    assert len(shown_both) >= 60
    close = [t for t in shown_both if abs(rtp[t] - stamp[t]) <= 2.0]
    # Measured here: all but 1-2 in 140 agree within 0.5 ms; the others differ by one
    # frame interval (the canvas read a newer picture than the callback's frame).
    assert len(close) >= 0.9 * len(shown_both)
    assert abs(statistics.median(rtp.values()) - statistics.median(stamp.values())) < 3.0


def write_png(path: Path, width: int, height: int) -> Path:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 200, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    return path


SELECTED = ("(() => { const s = document.getElementById('avatar-select');"
            " return s.options[s.selectedIndex].textContent; })()")


def named(page, name: str | None) -> None:
    """Wait until the session's settings, as the server reported them, name ``name``."""
    page.wait_for_function("n => window.vicocam.settings && window.vicocam.settings.avatar === n",
                           arg=name, timeout=30_000)


def test_the_page_names_the_avatar_in_use_and_its_controls_use_the_channel(tmp_path):
    presets = tmp_path / "avatars"
    presets.mkdir()
    write_png(presets / "preset.png", 96, 128)
    upload = write_png(tmp_path / "mine.png", 120, 160)
    start = LiveSettings(avatar=AvatarKey("person:1"), output=OutputMode.PASTE)
    server = identity_server(avatars_dir=presets, settings=start)
    with page_of(server) as page:
        session_requests: list[str] = []  # "METHOD route" of every session API call
        page.on("request", lambda r: session_requests.append(
            f"{r.method} {r.url.rsplit('/', 1)[-1]}") if "/api/sessions/" in r.url else None)
        named(page, "person:1")  # the server's own avatar, by its own name
        page.select_option("#avatar-select", "preset.png")
        named(page, "preset.png")
        after_pick = page.evaluate(SELECTED)
        page.set_input_files("#avatar-file", str(upload))
        wait_for_message(page, "160")
        named(page, "mine.png")
        after_upload = page.evaluate(SELECTED)
        page.locator("#strength").fill("1.5")
        wait_for_message(page, "strength 1.50")
        page.select_option("#avatar-select", "")
        named(page, "person:1")
        after_default = page.evaluate(SELECTED)
        settings = page.evaluate("window.vicocam.settings")
    assert after_pick == "preset.png"
    assert after_upload == "mine.png (uploaded)"
    assert after_default == "server default (person:1)"
    assert settings["strength"] == 1.5
    # Picks, uploads, settings and stats all went over the data channel: through a
    # cluster's gateway no HTTP request reaches the session.
    assert session_requests == []
