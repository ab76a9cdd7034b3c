// Capture -> display latency of whatever camera the page sends, from RTP timestamps.
//
// 1. The page's own frames. capture_times.js reports each encoded camera
//    frame's RTP timestamp and when it left the encoder; the local preview's
//    requestVideoFrameCallback gives frames' capture times. Chromium writes
//    the capture time on a 90 kHz clock plus a constant, so a frame's capture
//    time is rtp / 90 - offset. Pairing a preview frame with each encoded
//    frame gives offsets one frame interval apart; no frame is encoded before
//    it is captured, so the smallest offset that puts no encoded frame before
//    its capture is the preview frame's own (the median of the recent ones is
//    kept). Until one is known, the time a frame left the encoder stands in.
// 2. The server's frames. For each frame it sends, the server names its RTP
//    timestamp and that of the camera frame it was made from (the control
//    channel's "timing" messages, stages/webrtc/control_channel.py).
// 3. A returned frame's requestVideoFrameCallback metadata.rtpTimestamp is the
//    one the server named, within a tick or two: the server's decoder and
//    encoder round pts through other time bases. Frames are thousands of
//    ticks apart, so the nearest within two ticks is the one.
// Latency = the returned frame's display time - its camera frame's capture time.

const RTP_WRAP = 2 ** 32;
const TICKS_PER_MS = 90;
const ROUNDING = [0, -1, 1, -2, 2]; // ticks a pts may be off by after a codec rounded it

function remember(map, key, value, keep) {
  map.set(key, value);
  if (map.size > keep) map.delete(map.keys().next().value);
}

function pushBounded(list, item, keep) {
  list.push(item);
  if (list.length > keep) list.shift();
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export class RtpLatency {
  constructor({ keep = 900, offsets = 30, maxWaitMs = 3000 } = {}) {
    Object.assign(this, { keep, keepOffsets: offsets, maxWaitMs });
    this.sentFrames = new Map(); // camera rtp -> {ms: rtp / 90 unwrapped, at: left the encoder}
    this.encoded = []; // recent {ms, at}, to pair with preview captures
    this.previews = []; // capture times not paired yet
    this.offsets = []; // recent rtp / 90 - capture time, ms
    this.epoch = 0;
    this.lastRtp = undefined;
    this.sourceOf = new Map(); // returned frame's rtp -> camera frame's rtp
    this.pending = []; // {rtp, at}: shown frames not matched yet
    this.unmatched = 0; // shown frames given up after maxWaitMs
  }

  // A camera frame with RTP timestamp `rtp` left the encoder at `at` (page ms).
  sent(rtp, at) {
    if (this.lastRtp !== undefined && rtp < this.lastRtp - RTP_WRAP / 2) this.epoch += 1;
    this.lastRtp = rtp;
    const ms = (this.epoch * RTP_WRAP + rtp) / TICKS_PER_MS;
    remember(this.sentFrames, rtp, { ms, at }, this.keep);
    pushBounded(this.encoded, { ms, at }, 60);
    this.pairPreviews();
  }

  // The local preview showed a camera frame captured at `captureTime` (page ms).
  previewed(captureTime) {
    if (captureTime === undefined) return;
    pushBounded(this.previews, captureTime, 60);
    this.pairPreviews();
  }

  pairPreviews() {
    while (this.previews.length) {
      const capture = this.previews[0];
      if (!this.encoded.some((e) => e.at >= capture)) return; // still being encoded
      this.previews.shift();
      // An offset below this would have a frame leave the encoder before its capture
      // (1 ms of slack: rtp / 90 and capture times differ by rounding).
      const least = Math.max(...this.encoded.map((e) => e.ms - e.at)) - 1;
      const offsets = this.encoded.map((e) => e.ms - capture).filter((k) => k >= least);
      if (offsets.length) pushBounded(this.offsets, Math.min(...offsets), this.keepOffsets);
    }
  }

  // The server's [[rtp, camera rtp], ...] for the frames it sent.
  serverFrames(frames) {
    for (const [rtp, source] of frames) remember(this.sourceOf, rtp, source, this.keep);
  }

  // A returned frame with RTP timestamp `rtp` is shown at `at` (page ms).
  shown(rtp, at) {
    pushBounded(this.pending, { rtp, at }, this.keep);
  }

  // Samples {t, ms} of the shown frames matched so far (display time, latency).
  resolve(now) {
    const samples = [];
    this.pending = this.pending.filter(({ rtp, at }) => {
      const captured = this.captureOfShown(rtp);
      if (captured !== undefined) {
        samples.push({ t: at, ms: at - captured });
        return false;
      }
      if (now - at <= this.maxWaitMs) return true;
      this.unmatched += 1;
      return false;
    });
    return samples;
  }

  captureOfShown(rtp) {
    const source = nearest(this.sourceOf, rtp);
    const sent = source === undefined ? undefined : nearest(this.sentFrames, source);
    if (sent === undefined) return undefined;
    return this.offsets.length ? sent.ms - median(this.offsets) : sent.at;
  }
}

// The value `map` holds for `rtp`, or for a timestamp within ROUNDING of it.
function nearest(map, rtp) {
  for (const d of ROUNDING) {
    const value = map.get((rtp + d + RTP_WRAP) % RTP_WRAP);
    if (value !== undefined) return value;
  }
  return undefined;
}

// Report each encoded camera frame of `pc` to `latency` (capture_times.js, in a
// worker). Returns the worker (terminate it at hang-up), or null where the
// browser has no RTCRtpScriptTransform or `pc` sends no video.
export function measureCaptureTimes(pc, latency) {
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
  if (!sender || typeof RTCRtpScriptTransform === "undefined") return null;
  const worker = new Worker(new URL("./capture_times.js", import.meta.url));
  worker.onmessage = ({ data }) => latency.sent(data.rtp, data.at - performance.timeOrigin);
  sender.transform = new RTCRtpScriptTransform(worker, { side: "send" });
  return worker;
}
