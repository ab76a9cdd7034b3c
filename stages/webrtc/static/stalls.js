// Stalls of the returned video: gaps between displayed frames longer than a
// threshold (100 ms: three frames at 30 fps, well under Chromium's freezeCount
// threshold of max(3 x the average frame duration, average + 150 ms), which
// misses the 100-300 ms hitches a person sees). The page and the benchmark
// read the same counter.

export const STALL_MS = 100;

export class StallCounter {
  constructor({ thresholdMs = STALL_MS } = {}) {
    this.thresholdMs = thresholdMs;
    this.count = 0; // gaps over the threshold
    this.totalMs = 0; // their summed length
    this.frames = 0;
    this.last = null;
  }

  // One displayed frame at time t (ms, any monotonic clock).
  frame(t) {
    if (this.last !== null && t > this.last) {
      const gap = t - this.last;
      if (gap > this.thresholdMs) {
        this.count += 1;
        this.totalMs += gap;
      }
    }
    if (this.last === null || t > this.last) this.last = t;
    this.frames += 1;
  }

  snapshot() {
    return { count: this.count, totalMs: this.totalMs, frames: this.frames };
  }
}
