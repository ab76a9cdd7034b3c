"""The page's stall counter (``static/stalls.js``), run in the real browser it ships to."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from benchmarks.browser import CHROMIUM_ARGS, find_chromium
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.peers import browser_marks

pytestmark = browser_marks()

# Displayed-frame times (ms): 33 ms apart, then a 100 ms gap (not a stall: the
# threshold is "over 100"), a 150 ms and a 400 ms gap, a repeated time and one
# out of order (both ignored), then steady again.
SCENARIO = """async () => {
  const { StallCounter } = await import('/static/stalls.js');
  const c = new StallCounter();
  const times = [0, 33, 66, 99, 199, 232, 382, 415, 815, 815, 800, 848, 881];
  for (const t of times) c.frame(t);
  return c.snapshot();
}"""


def test_gaps_over_100_ms_between_displayed_frames_are_stalls():
    from playwright.sync_api import sync_playwright

    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1"))
    with ServerThread(server) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True,
                                    args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page()
            page.goto(url)
            result = page.evaluate(SCENARIO)
        finally:
            browser.close()
    assert result == {"count": 2, "totalMs": 150 + 400, "frames": 13}
