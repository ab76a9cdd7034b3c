// Stalls of the returned video: gaps between displayed frames longer than a
// threshold (100 ms: three frames at 30 fps, well under Chromium's freezeCount
// threshold of max(3 x the average frame duration, average + 150 ms), which
// misses the 100-300 ms hitches a person sees). The page and the benchmark
// read the same counter.
//
// The page learns of displayed frames from requestVideoFrameCallback, which
// runs on the page's main thread and reports only the newest frame when it
// runs late: its `presentedFrames` then advances by more than one. Such a
// gap is a stall only if the frames presented in it were, on average, more
// than the threshold apart (then at least one interval was); otherwise the
// video may have played on while the page's script was held up, and the gap
// is counted apart, as `unsure`.

export const STALL_MS = 100;

export class StallCounter {
  constructor({ thresholdMs = STALL_MS } = {}) {
    this.thresholdMs = thresholdMs;
    this.count = 0; // gaps over the threshold
    this.totalMs = 0; // their summed length
    this.unsure = 0; // gaps over the threshold that spanned several presented frames
    this.unsureMs = 0;
    this.frames = 0;
    this.last = null;
    this.lastPresented = null;
  }

  // One displayed frame at time t (ms, any monotonic clock); `presented`, if
  // known, is the video's count of frames presented so far (presentedFrames).
  frame(t, presented = null) {
    if (this.last !== null && t > this.last) {
      const gap = t - this.last;
      const known = presented !== null && this.lastPresented !== null;
      const spanned = known ? Math.max(1, presented - this.lastPresented) : 1;
      if (gap / spanned > this.thresholdMs) {
        this.count += 1;
        this.totalMs += gap;
      } else if (gap > this.thresholdMs) {
        this.unsure += 1;
        this.unsureMs += gap;
      }
    }
    if (this.last === null || t > this.last) {
      this.last = t;
      if (presented !== null) this.lastPresented = presented;
    }
    this.frames += 1;
  }

  snapshot() {
    return { count: this.count, totalMs: this.totalMs, unsure: this.unsure,
             unsureMs: this.unsureMs, frames: this.frames };
  }
}
