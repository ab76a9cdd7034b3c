// When the page takes its session as lost, and how long it waits before each new offer.
// The same rules as `vicocam client` (stages/webrtc/reconnect.py).

export const SILENCE_MS = 3000; // the server pushes stats every second: 3 s of nothing = gone
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 4000;

// 0 right after a session that worked, then 250 ms doubling to 4 s.
export function backoffMs(failures) {
  if (failures <= 0) return 0;
  return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1));
}

// Full (503), too fast (429), failing for now (5xx) or unreachable (no status): try again.
// A wrong token or a bad request will not change by retrying.
export function retryable(error) {
  const status = error.status;
  return status === undefined || status === 429 || status === 503 || status >= 500;
}

// How long to wait after `error`, the `failures`-th in a row: the server's Retry-After
// when it gave one, never less than the backoff.
export function retryDelayMs(error, failures) {
  return Math.max((error.retryAfter || 0) * 1000, backoffMs(failures));
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
