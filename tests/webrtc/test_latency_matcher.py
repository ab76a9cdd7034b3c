"""The page's latency matcher (``static/latency.js``), run in the real browser it ships to."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from tests.webrtc.peers import browser_marks, evaluate_on_page

pytestmark = browser_marks()

# Two passes of a 20-frame clip looping every 2 s (frames 100 ms apart); the
# preview skips frame 7 in the first pass and frame 12 in the second.
SCENARIO = """async () => {
  const { LatencyMatcher } = await import('/static/latency.js');
  const m = new LatencyMatcher({ settleMs: 500 });
  for (let i = 0; i < 20; i++) if (i !== 7) m.local(i, 1000 + 100 * i);
  m.remote(5, 1560);   // 60 ms
  const early = m.resolve(1900).length;  // not settled yet: the preview may still report
  m.remote(7, 1760);   // its capture was never seen: dropped
  for (let i = 0; i < 20; i++) if (i !== 12) m.local(i, 3000 + 100 * i);
  m.remote(19, 3050);  // sent in the first pass, shown after the clip restarted: 150 ms
  m.remote(12, 4260);  // skipped in this pass; its namesake is a loop older: dropped
  m.remote(13, 4350);  // 50 ms
  m.remote(3, 3100);   // shown before its capture in this pass: 1.8 s after the old one, dropped
  const samples = m.resolve(10000).map(s => [s.index, s.ms]);
  return { early, samples, dropped: m.dropped, loop: m.loopMs() };
}"""


def test_frames_match_their_own_pass_and_ambiguous_ones_are_dropped():
    result = evaluate_on_page(SCENARIO)
    assert result["early"] == 0
    assert result["loop"] == 2000
    assert result["samples"] == [[5, 60], [19, 150], [13, 50]]
    assert result["dropped"] == 3


ONE_PASS = """async () => {
  const { LatencyMatcher } = await import('/static/latency.js');
  const m = new LatencyMatcher({ settleMs: 500 });
  for (let i = 0; i < 20; i++) m.local(i, 1000 + 100 * i);
  CALLS
  const samples = m.resolve(10000).map(s => [s.index, s.ms]);
  return { samples, dropped: m.dropped };
}"""


def after_one_pass(calls: str) -> dict:
    """Run ``calls`` on a matcher ``m`` whose preview saw one pass of a 20-frame clip,
    frame i captured at 1000 + 100 i ms; its samples ``[index, ms]`` and drops."""
    return evaluate_on_page(ONE_PASS.replace("CALLS", calls))


def test_a_callback_that_read_the_next_frame_gives_way_and_zero_latency_is_no_match():
    # The callback of the frame shown at 1450 ran after the element had moved on to
    # frame 4: it read 4, and the next callback (shown at 1480) read 4 again.
    result = after_one_pass("""
      m.remote(3, 1350);   // 50 ms
      m.remote(4, 1450);   // read ahead: frame 4 was shown at 1480
      m.remote(4, 1480);   // 80 ms
      m.remote(9, 1900);   // no later than its capture: not a round trip, dropped
      m.remote(4, 1950);   // not right after the other 4: shown again later, 550 ms
    """)
    assert result["samples"] == [[3, 50], [4, 80], [4, 550]]
    assert result["dropped"] == 1


def test_a_read_that_the_next_frame_may_have_overtaken_is_not_used():
    # Each read done 5 ms after its display time but frame 5's, whose callback ran
    # late: frame 6's last packet came 10 ms before that read, which may be frame
    # 6's pixels and is not used. Frame 6's read came before the next frame arrived.
    result = after_one_pass("""
      m.returned(4, 1450, 1440, 1455);  // 50 ms
      m.returned(5, 1550, 1540, 1650);  // read after frame 6 arrived: dropped
      m.returned(6, 1683, 1640, 1688);  // 83 ms
      m.returned(null, 1716, 1700, 1721);  // no stamp read: nothing held
      m.returned(8, 1850, undefined, 1855);  // no receipt times: kept, 50 ms
      m.returned(9, 1950, undefined, 1955);  // held: its successor's callback never came
    """)
    assert result["samples"] == [[4, 50], [6, 83], [8, 50]]
    assert result["dropped"] == 1
