// The session's control channel (see stages/webrtc/control_channel.py for the
// messages): requests that wait for their reply, avatar uploads in binary
// chunks, and what the server pushes (settings changed elsewhere, stats, frame
// timing) handed to `handlers` by type. `lastMessageAt` is when the server
// last said anything: it pushes stats every second, so a long silence means
// the server is gone (app.js reconnects then).

export const CONTROL_LABEL = "control";
const REPLY_TIMEOUT_MS = 15000;
const UPLOAD_TIMEOUT_MS = 60000; // a large picture is decoded and prepared before the reply
export const CHUNK_BYTES = 16 * 1024; // the server takes binary messages of at most this
const HIGH_WATER_BYTES = 1024 * 1024; // queued in the channel before an upload waits

export class ControlChannel {
  // `handlers`: {settings, stats, timing, error, closed} functions taking a message.
  constructor(channel, handlers = {}) {
    this.channel = channel;
    this.handlers = handlers;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.nextId = 1;
    this.lastMessageAt = performance.now();
    channel.bufferedAmountLowThreshold = HIGH_WATER_BYTES / 2;
    channel.addEventListener("message", (event) => this.receive(event.data));
    channel.addEventListener("open", () => { this.lastMessageAt = performance.now(); });
    channel.addEventListener("close", () => {
      this.failAll("the control channel closed");
      if (this.handlers.closed) this.handlers.closed();
    });
  }

  get open() {
    return this.channel.readyState === "open";
  }

  // Resolves once the channel is open (true), or after `timeoutMs` (false).
  opened(timeoutMs) {
    if (this.open) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.channel.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(true);
      }, { once: true });
    });
  }

  // Send {type, id, ...fields}; resolves with the reply, rejects with the server's error.
  request(type, fields = {}, timeoutMs = REPLY_TIMEOUT_MS) {
    if (!this.open) return Promise.reject(new Error("the control channel is not open"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(id, null, new Error("no reply from the server")),
        timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.channel.send(JSON.stringify({ ...fields, type, id }));
    });
  }

  // Send a picture (an ArrayBuffer) as `name`: the header, then chunks, pausing while
  // the channel holds much unsent; resolves with the server's settings reply.
  async upload(name, bytes) {
    const reply = this.request("avatar-upload", { name, bytes: bytes.byteLength },
      UPLOAD_TIMEOUT_MS);
    let refused = false;
    reply.catch(() => { refused = true; }); // e.g. too large: stop sending
    for (let at = 0; at < bytes.byteLength && !refused && this.open; at += CHUNK_BYTES) {
      await this.drained();
      if (!refused && this.open) this.channel.send(bytes.slice(at, at + CHUNK_BYTES));
    }
    return reply;
  }

  drained() {
    if (this.channel.bufferedAmount <= HIGH_WATER_BYTES) return Promise.resolve();
    return new Promise((resolve) => {
      this.channel.addEventListener("bufferedamountlow", resolve, { once: true });
      this.channel.addEventListener("close", resolve, { once: true });
    });
  }

  receive(text) {
    this.lastMessageAt = performance.now();
    let message;
    try {
      message = JSON.parse(text);
    } catch (err) {
      console.warn("control: not JSON", err);
      return;
    }
    const failed = message.type === "error" ? new Error(message.error) : null;
    if (this.pending.has(message.id)) this.settle(message.id, message, failed);
    else if (failed && this.handlers.error) this.handlers.error(message);
    if (!failed && this.handlers[message.type]) this.handlers[message.type](message);
  }

  settle(id, message, error) {
    const waiting = this.pending.get(id);
    if (!waiting) return;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    if (error) waiting.reject(error);
    else waiting.resolve(message);
  }

  failAll(reason) {
    for (const id of [...this.pending.keys()]) this.settle(id, null, new Error(reason));
  }
}
