"""The page's stall counter (``static/stalls.js``), run in the real browser it ships to."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("aiortc")

from tests.webrtc.peers import browser_marks, evaluate_on_page

pytestmark = browser_marks()


def count_stalls(frames: list[list[float]]) -> dict:
    """Feed ``[time ms, presentedFrames or None]`` pairs to a fresh counter on the page."""
    return evaluate_on_page(f"""async () => {{
  const {{ StallCounter }} = await import('/static/stalls.js');
  const c = new StallCounter();
  for (const [t, presented] of {json.dumps(frames)}) c.frame(t, presented);
  return c.snapshot();
}}""")


def test_gaps_over_100_ms_between_displayed_frames_are_stalls():
    # Displayed-frame times (ms): 33 ms apart, then a 100 ms gap (not a stall: the
    # threshold is "over 100"), a 150 ms and a 400 ms gap, a repeated time and one
    # out of order (both ignored), then steady again. No presentedFrames known.
    times = [0, 33, 66, 99, 199, 232, 382, 415, 815, 815, 800, 848, 881]
    result = count_stalls([[t, None] for t in times])
    assert result == {"count": 2, "totalMs": 150 + 400, "unsure": 0, "unsureMs": 0,
                      "frames": 13}


def test_a_late_callback_over_frames_the_video_presented_is_not_a_stall():
    # The frame callback's times with the video's presentedFrames beside them. A
    # 150 ms gap over one presented frame is a stall; a 130 ms gap over 4 presented
    # frames (32.5 ms apart on average: the callback ran late) is unsure; a 330 ms
    # gap over 3 frames (110 ms apart on average) is a stall: at least one of its
    # intervals was over 100 ms.
    frames = [[0, 1], [33, 2], [183, 3], [216, 4], [346, 8], [379, 9], [709, 12]]
    result = count_stalls(frames)
    assert result == {"count": 2, "totalMs": 150 + 330, "unsure": 1, "unsureMs": 130,
                      "frames": 7}
