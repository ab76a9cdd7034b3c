// Matches returned frames to the camera frames they came from, by stamped index.
//
// The test camera is a clip that loops, so an index recurs once per pass. A
// returned frame shown at time T with index i came from the latest capture of
// i before T, unless the preview skipped that capture (requestVideoFrameCallback
// misses some frames): then the latest capture it saw is a whole loop older.
// So a match is kept only if it is less than half a loop old (the loop's
// length is measured from the preview); longer latencies cannot be told apart
// from that mistake and are counted in `dropped`, not guessed. The preview's
// callbacks can also run late, after the returned frame is shown: a returned
// frame is resolved only once the preview is `settleMs` past it.
//
// A returned frame's callback can run after the element moved on to the next
// frame: its pixels then carry the next frame's index under this frame's
// display time, a latency one frame interval short (whole sessions keep such
// a phase). So a read is held until the next frame's callback says when that
// frame's last packet came (`returned`): a next frame received before the read
// may be what was read, and the read counts in `dropped`. Without receipt
// times, two callbacks in a row that read the same index still show a read
// ahead: the index is the later callback's (the server returns each frame
// once). A match no later than its capture is not a round trip either and is
// counted in `dropped`.

export class LatencyMatcher {
  constructor({ settleMs = 500, keepPasses = 3 } = {}) {
    this.settleMs = settleMs;
    this.keepPasses = keepPasses;
    this.passes = []; // {start, times: Map(index -> capture time), lastIndex}
    this.pending = []; // {index, shown}
    this.dropped = 0; // returned frames that could not be matched
    this.held = null; // the last returned frame's read, until the next one's callback
  }

  // The preview showed camera frame `index`, captured at `time`.
  local(index, time) {
    let pass = this.passes[this.passes.length - 1];
    if (!pass || index < pass.lastIndex) {
      pass = { start: time, times: new Map(), lastIndex: -1 };
      this.passes.push(pass);
      if (this.passes.length > this.keepPasses) this.passes.shift();
    }
    pass.times.set(index, time);
    pass.lastIndex = index;
  }

  // A returned frame's callback: the frame shown at `shown`, whose last packet
  // came at `receiveTime` (undefined if unknown), and the stamp `index` (or null)
  // its pixels read as, the read done by `readAt`.
  returned(index, shown, receiveTime, readAt) {
    const held = this.held;
    this.held = index === null ? null : { index, shown, readAt };
    if (!held) return;
    if (receiveTime !== undefined && receiveTime <= held.readAt) this.dropped += 1;
    else this.remote(held.index, held.shown);
  }

  // A returned frame with `index` is shown at `shown`.
  remote(index, shown) {
    const last = this.pending[this.pending.length - 1];
    if (last && last.index === index) last.shown = shown; // the earlier read ran ahead
    else this.pending.push({ index, shown });
  }

  // Samples {t, ms, index} for returned frames shown before `now - settleMs`.
  resolve(now) {
    const samples = [];
    while (this.pending.length && this.pending[0].shown <= now - this.settleMs) {
      const { index, shown } = this.pending.shift();
      const taken = this.captureTime(index, shown);
      if (taken === undefined || taken >= shown) {
        this.dropped += 1;
      } else {
        samples.push({ t: shown, ms: shown - taken, index });
      }
    }
    return samples;
  }

  captureTime(index, shown) {
    let best;
    for (const pass of this.passes) {
      const time = pass.times.get(index);
      if (time !== undefined && time <= shown && (best === undefined || time > best)) best = time;
    }
    const loop = this.loopMs();
    if (best !== undefined && loop !== undefined && shown - best > loop / 2) return undefined;
    return best;
  }

  // The clip's loop length, from the starts of the last two passes.
  loopMs() {
    const n = this.passes.length;
    return n >= 2 ? this.passes[n - 1].start - this.passes[n - 2].start : undefined;
  }
}
