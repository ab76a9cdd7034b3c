"""The page's stall counter (``static/stalls.js``), run in the real browser it ships to."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from tests.webrtc.peers import browser_marks, evaluate_on_page

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
    result = evaluate_on_page(SCENARIO)
    assert result == {"count": 2, "totalMs": 150 + 400, "frames": 13}
