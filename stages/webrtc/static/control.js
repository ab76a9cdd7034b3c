// The session's control channel (see stages/webrtc/control_channel.py for the
// messages): requests that wait for their reply, and what the server pushes
// (settings changed elsewhere, stats, frame timing) handed to `handlers` by type.

export const CONTROL_LABEL = "control";
const REPLY_TIMEOUT_MS = 15000;

export class ControlChannel {
  // `handlers`: {settings, stats, timing, error} functions taking a message.
  constructor(channel, handlers = {}) {
    this.channel = channel;
    this.handlers = handlers;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.nextId = 1;
    channel.addEventListener("message", (event) => this.receive(event.data));
    channel.addEventListener("close", () => this.failAll("the control channel closed"));
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
  request(type, fields = {}) {
    if (!this.open) return Promise.reject(new Error("the control channel is not open"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(id, null, new Error("no reply from the server")),
        REPLY_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.channel.send(JSON.stringify({ ...fields, type, id }));
    });
  }

  receive(text) {
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
