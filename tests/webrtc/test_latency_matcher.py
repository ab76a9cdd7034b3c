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
