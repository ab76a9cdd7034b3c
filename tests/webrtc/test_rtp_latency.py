"""The page's RTP-timestamp latency matcher (``static/rtp_latency.js``), run in the real
browser it ships to, on made-up frames whose latencies are known."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from tests.webrtc.peers import browser_marks, evaluate_on_page

pytestmark = browser_marks()

# 20 camera frames 33 ms apart whose 90 kHz RTP timestamps wrap past 2**32 mid-way;
# each leaves the encoder 5 ms after capture, frame 3 40 ms after (later than the next
# capture), frame 12 is dropped by the encoder; the preview misses frame 7. The server
# returns every frame it got, its own timestamps wrapping too, names some camera
# timestamps a tick off (a decoder's rounding) and some returned ones a tick off the
# other way; each is shown 60 ms after its capture. One shown frame was never named.
SCENARIO = """async () => {
  const { RtpLatency } = await import('/static/rtp_latency.js');
  const WRAP = 2 ** 32;
  const m = new RtpLatency({ maxWaitMs: 1000 });
  const offset = WRAP / 90 - 1300;  // ms: rtp / 90 = capture + offset; wraps at frame 10
  const capture = (i) => 1000 + 33 * i;
  const rtp = (i) => Math.round((capture(i) + offset) * 90) % WRAP;
  const frames = [...Array(20).keys()].filter((i) => i !== 12);
  for (let i = 0; i < 20; i++) {
    if (i !== 12) m.sent(rtp(i), capture(i) + (i === 3 ? 40 : 5));
    if (i !== 7) m.previewed(capture(i));
  }
  const back = (i) => (WRAP - 6000 + 3000 * i) % WRAP;
  m.serverFrames(frames.map((i) => [back(i), (rtp(i) + (i % 3 === 0 ? 1 : 0)) % WRAP]));
  for (const i of frames) m.shown((back(i) + WRAP - (i % 4 === 1 ? 1 : 0)) % WRAP, capture(i) + 60);
  m.shown(123, 1500);
  const samples = m.resolve(1600).map((s) => Math.round(s.ms * 100) / 100);
  const waiting = m.pending.length;
  m.resolve(2600);
  return { samples, waiting, unmatched: m.unmatched, offsets: m.offsets.length,
           offset: m.offsets.map((k) => Math.round((k - offset) * 10) / 10) };
}"""


def test_returned_frames_are_matched_to_their_capture_through_both_wraps():
    result = evaluate_on_page(SCENARIO)
    assert result["samples"] == [60.0] * 19
    # Every preview frame paired with its own encoded frame, but frame 12, never encoded:
    # it paired with the next frame, one interval off, and the median ignores it.
    assert sorted(result["offset"]) == [0.0] * 18 + [33.0]
    assert result["waiting"] == 1 and result["unmatched"] == 1  # the unnamed one, given up
