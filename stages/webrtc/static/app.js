// The vicocam page: sends the camera to the server, shows the returned avatar,
// and drives the session's settings. window.vicocam exposes the live state
// (used by the automated browser test and the benchmark).
//
// Everything the page does during a session travels on the session's own data
// channel (control.js): settings, avatar picks and uploads, stats. Over HTTP go
// only /api/config, /api/avatars (and the preset pictures), /api/offer, and the
// DELETE on leaving: through a cluster's gateway those are the requests that
// reach any server, while the session lives on one replica.
//
// A session that ends unasked (its connection fails or closes, its channel
// closes, or the server says nothing for SILENCE_MS: a server that died sends
// nothing) is offered again to the same server, with backoff and the server's
// Retry-After, on the same camera stream, with the ICE servers (TURN credentials
// included) of a fresh /api/config; the new session gets the page's
// avatar (a preset's name, or the uploaded picture kept in memory) and
// settings again. A session the user hung up stays ended.

import { CONTROL_LABEL, ControlChannel } from "./control.js";
import { LatencyMatcher } from "./latency.js";
import { backoffMs, retryable, retryDelayMs, SILENCE_MS, sleep } from "./reconnect.js";
import { measureCaptureTimes, RtpLatency } from "./rtp_latency.js";
import { StallCounter } from "./stalls.js";
import { StampReader } from "./stamp.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// No token in the page: opening the printed /?token=... URL set an HttpOnly
// cookie that the page's same-origin requests carry.
const authHeaders = {};
const LATENCY_KEEP = 20000;
const WATCH_MS = 250; // how often a session's signs of life are checked
const QUICK_LOSS_MS = 10000; // a session lost sooner than this was not a good one
const OFFER_TIMEOUT_MS = 30000; // a gateway may start a host for an offer

const state = {
  connected: false,
  error: null,
  session: null,
  sessions: [], // every session this page held, in order
  reconnecting: false, // the session was lost and a new one is being made
  reconnects: 0, // sessions regained after a loss
  losses: [], // {session, reason, at (performance.now())} of each session lost unasked
  connectedAt: 0, // when the current session was made (performance.now())
  quickLosses: 0, // sessions in a row lost soon after they were made: back off before the next
  run: 0, // counts Start and Hang up presses: a reconnect loop of an older run stops
  connection: 0, // counts sessions: watchers of an older one stop
  camera: null, // the camera stream, kept across sessions
  config: null, // the server's /api/config, read at Start
  avatarChoice: null, // {name} (a preset) or {name, bytes} (an upload), re-sent to new sessions
  latencies: [], // {t, ms, index}: capture -> presentation of stamped frames
  latencyDropped: 0, // returned stamped frames that matched no capture
  rtpLatencies: [], // {t, ms}: capture -> presentation of any camera, by RTP timestamp
  receiveToPresent: [], // {t, ms}: a returned frame's last packet -> its presentation
  displayEstimate: [], // {t, ms}: Chromium's expected display time - the presentation
  rtp: null, // the RtpLatency matcher of the session
  captureWorker: null, // reports the encoded camera frames (null: RTCRtpScriptTransform missing)
  stalls: new StallCounter(), // gaps over 100 ms between displayed returned frames
  inbound: {},
  outbound: {},
  server: {},
  settings: null, // the session's settings as the server last confirmed them
  defaultAvatar: null, // what the server calls its own avatar
  control: null, // the session's control channel (control.js)
  pc: null,
};
window.vicocam = state;

// Fresh counters right now (the panel itself refreshes once a second).
state.snapshot = async () => {
  if (state.pc) await readStats(state.pc);
  if (channelOpen()) state.server = await serverStats().catch(() => state.server);
  return {
    now: performance.now(), inbound: state.inbound, outbound: state.outbound, server: state.server,
    stalls: state.stalls.snapshot(),
  };
};

// ---- server API ---------------------------------------------------------------
// Rejects with the server's error text; `status` and `retryAfter` (seconds) say more.
async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { ...authHeaders, ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("Retry-After")) || 0;
    throw error;
  }
  return body;
}

function postJson(path, body) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").classList.toggle("error", isError);
  if (isError) state.error = text;
}

function setStatus(text) {
  $("status").textContent = text;
}

// ---- connection ------------------------------------------------------------------
async function getCamera() {
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch (err) {
    // No microphone (or it was refused): carry on with video only.
    return await navigator.mediaDevices.getUserMedia({ video, audio: false });
  }
}

function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // send what we have; the server needs one usable candidate
  });
}

// Keep the picture size under bandwidth pressure (a browser otherwise starts
// low and scales the camera down for the first seconds).
async function keepResolution(pc) {
  for (const sender of pc.getSenders()) {
    if (!sender.track || sender.track.kind !== "video") continue;
    const parameters = sender.getParameters();
    parameters.degradationPreference = "maintain-resolution";
    try {
      await sender.setParameters(parameters);
    } catch (err) {
      console.warn("cannot set degradationPreference", err);
    }
  }
}

async function start() {
  $("start").disabled = true;
  state.error = null;
  const run = ++state.run;
  try {
    setStatus("starting camera…");
    state.config = await api("/api/config");
    state.camera = await getCamera();
    $("local").srcObject = state.camera;
    watchLocal();
    await connect();
    $("stop").disabled = false;
    pollStats(run);
  } catch (err) {
    say(`could not start: ${err.message}`, true);
    setStatus("failed");
    stopCamera();
    $("start").disabled = false;
  }
}

// One session on the camera stream: offer, answer, the control channel open, and the
// session given this page's avatar and settings. On failure nothing of it is left.
async function connect() {
  // The config's RTCIceServer dictionaries as they are: urls, username, credential.
  const pc = new RTCPeerConnection({ iceServers: state.config.iceServers || [] });
  state.pc = pc;
  const connection = ++state.connection;
  try {
    state.camera.getTracks().forEach((track) => pc.addTrack(track, state.camera));
    openControl(pc);
    state.rtp = new RtpLatency();
    state.captureWorker = measureCaptureTimes(pc, state.rtp);
    const remote = new MediaStream();
    $("remote").srcObject = remote;
    pc.addEventListener("track", (event) => remote.addTrack(event.track));
    pc.addEventListener("connectionstatechange", () => onConnectionState(pc));
    await negotiate(pc);
    await keepResolution(pc);
    if (!(await state.control.opened(5000))) throw new Error("the session's control channel did not open");
    watchRemote(connection);
    watchSession(pc);
    state.connectedAt = performance.now();
    await restoreSession();
  } catch (err) {
    if (state.pc === pc) dropConnection();
    throw err;
  }
}

async function negotiate(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc, 3000);
  setStatus("connecting…");
  const answer = await api("/api/offer", {
    ...postJson("/api/offer", { sdp: pc.localDescription.sdp, type: "offer" }),
    signal: AbortSignal.timeout(OFFER_TIMEOUT_MS), // a hung server: try again
  });
  if (state.pc !== pc) { // hung up while the server answered
    api(`/api/sessions/${answer.session}`, { method: "DELETE" }).catch(() => {});
    throw new Error("hung up");
  }
  state.session = answer.session;
  state.sessions.push(answer.session);
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
}

// Controls and live stats travel on a data channel of the session itself, opened
// before the offer so that the offer carries it.
function openControl(pc) {
  state.control = new ControlChannel(pc.createDataChannel(CONTROL_LABEL), {
    settings: (message) => showSettings(message.settings),
    stats: (message) => { state.server = message.stats; },
    timing: (message) => state.rtp && state.rtp.serverFrames(message.frames),
    error: (message) => say(`the server refused a control: ${message.error}`, true),
    closed: () => sessionLost(pc, "the server closed the session"),
  });
}

function onConnectionState(pc) {
  if (state.pc !== pc) return;
  setStatus(pc.connectionState);
  state.connected = pc.connectionState === "connected";
  if (["failed", "closed"].includes(pc.connectionState)) {
    sessionLost(pc, `the connection ${pc.connectionState}`);
  }
}

// A server that died says nothing: no message (stats come every second) for SILENCE_MS.
function watchSession(pc) {
  const timer = setInterval(() => {
    if (state.pc !== pc) {
      clearInterval(timer);
    } else if (performance.now() - state.control.lastMessageAt > SILENCE_MS) {
      clearInterval(timer);
      sessionLost(pc, `nothing from the server for ${SILENCE_MS / 1000} s`);
    }
  }, WATCH_MS);
}

// The session's connection, channel and returned video go; the camera stays.
function dropConnection() {
  const pc = state.pc;
  state.pc = null;
  state.control = null;
  state.session = null;
  state.connected = false;
  if (pc) pc.close();
  if (state.captureWorker) state.captureWorker.terminate();
  state.captureWorker = null;
  const remote = $("remote").srcObject;
  if (remote) remote.getTracks().forEach((t) => t.stop());
  $("remote").srcObject = null;
}

function stopCamera() {
  if (state.camera) state.camera.getTracks().forEach((t) => t.stop());
  state.camera = null;
  $("local").srcObject = null;
}

function sessionLost(pc, reason) {
  if (state.pc !== pc) return; // already handled, or the user hung up
  const session = state.session;
  state.losses.push({ session, reason, at: performance.now() });
  const quick = performance.now() - state.connectedAt < QUICK_LOSS_MS;
  state.quickLosses = quick ? state.quickLosses + 1 : 0;
  dropConnection();
  // Frees the server's slot at once when it still runs (a cut network); best effort.
  if (session) api(`/api/sessions/${session}`, { method: "DELETE" }).catch(() => {});
  reconnect(reason, state.run);
}

// New offers to the same server until one holds, or the user hangs up.
async function reconnect(reason, run) {
  state.reconnecting = true;
  setStatus("reconnecting…");
  say(`the session ended (${reason}); reconnecting…`);
  let failures = 0;
  let delay = backoffMs(state.quickLosses); // at once after a session that lasted
  while (state.run === run) {
    await sleep(delay);
    if (state.run !== run) return;
    try {
      // Fresh ICE servers: TURN credentials the server minted from a shared secret expire.
      state.config = await api("/api/config");
      await connect();
      state.reconnecting = false;
      state.reconnects += 1;
      say("reconnected");
      return;
    } catch (err) {
      if (state.run !== run) return;
      failures += 1;
      if (!retryable(err)) return giveUp(err);
      delay = retryDelayMs(err, failures);
      setStatus("reconnecting…");
      say(`reconnecting: ${err.message}; trying again in ${(delay / 1000).toFixed(1)} s`);
    }
  }
}

function giveUp(err) {
  state.reconnecting = false;
  say(`could not reconnect: ${err.message}`, true);
  endRun();
}

async function hangUp() {
  const session = state.session;
  endRun();
  if (session) {
    await api(`/api/sessions/${session}`, { method: "DELETE" }).catch(() => {});
  }
}

function endRun() {
  state.run += 1; // a reconnect loop still waiting stops
  state.reconnecting = false;
  $("stop").disabled = true;
  dropConnection();
  stopCamera();
  setStatus("idle");
  $("start").disabled = false;
}

// A new session starts from the server's settings: give it this page's avatar and
// what the controls show.
async function restoreSession() {
  const choice = state.avatarChoice;
  const controls = controlsBody(); // before a reply shows the new session's defaults
  try {
    if (choice && choice.bytes) showSettings(await state.control.upload(choice.name, choice.bytes));
    else if (choice) showSettings(await chooseAvatar(choice.name));
  } catch (err) {
    say(`avatar not restored: ${err.message}`, true);
  }
  await changeSettings(controls);
}

// ---- capture -> display latency -----------------------------------------------------
// Of any camera: a returned frame's RTP timestamp leads, through the server's
// timing messages, to the camera frame it was made from and the time that
// frame was captured (rtp_latency.js). Of the stamped test camera also (the
// benchmarks read it): each returned frame's stamped index is matched with the
// time the same index was captured (local preview; see latency.js for how a
// looping clip's repeated indices are told apart).
const stamps = { matcher: null, local: new StampReader(), remote: new StampReader() };

function keepSamples(list, samples) {
  for (const sample of samples) list.push(sample);
  if (list.length > LATENCY_KEEP) list.splice(0, list.length - LATENCY_KEEP);
}

function watchLocal() {
  const local = $("local");
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  stamps.matcher = new LatencyMatcher();
  const run = state.run;
  const onLocal = (now, meta) => {
    if (state.run !== run) return;
    if (state.rtp) state.rtp.previewed(meta.captureTime);
    const index = stamps.local.read(local);
    if (index !== null) stamps.matcher.local(index, meta.captureTime ?? meta.presentationTime ?? now);
    keepSamples(state.latencies, stamps.matcher.resolve(performance.now()));
    state.latencyDropped = stamps.matcher.dropped;
    local.requestVideoFrameCallback(onLocal);
  };
  local.requestVideoFrameCallback(onLocal);
}

// Each returned frame of session `connection`: its latency, and the stall counter (any
// camera, stamped or not). A frame counts as shown when the browser presented it
// for composition (`presentationTime`, a measured time). Its `expectedDisplayTime`
// is an estimate: headless Chromium, measured on these machines, put it from 3 ms
// *before* the presentation to 30 ms after, the same all through a session, so
// sessions of one server differed by up to a frame interval in capture ->
// display; it is kept apart (`displayEstimate`).
function watchRemote(connection) {
  const remote = $("remote");
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const rtp = state.rtp;
  const onRemote = (now, meta) => {
    if (state.connection !== connection) return;
    const shown = meta.presentationTime ?? meta.expectedDisplayTime ?? now;
    state.stalls.frame(shown, meta.presentedFrames ?? null);
    if (meta.rtpTimestamp !== undefined) rtp.shown(meta.rtpTimestamp, shown);
    if (meta.receiveTime !== undefined) {
      keepSamples(state.receiveToPresent, [{ t: shown, ms: shown - meta.receiveTime }]);
    }
    if (meta.expectedDisplayTime !== undefined && meta.presentationTime !== undefined) {
      const ms = meta.expectedDisplayTime - meta.presentationTime;
      keepSamples(state.displayEstimate, [{ t: shown, ms }]);
    }
    keepSamples(state.rtpLatencies, rtp.resolve(performance.now()));
    const index = stamps.remote.read(remote);
    if (stamps.matcher) stamps.matcher.returned(index, shown, meta.receiveTime, performance.now());
    remote.requestVideoFrameCallback(onRemote);
  };
  remote.requestVideoFrameCallback(onRemote);
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// ---- stats -------------------------------------------------------------------------
async function readStats(pc) {
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.kind !== "video") return;
    if (s.type === "inbound-rtp") state.inbound = s;
    if (s.type === "outbound-rtp") state.outbound = s;
  });
}

// The server's stats come pushed on the channel; the browser's own are read here.
async function pollStats(run) {
  while (state.run === run) {
    try {
      if (state.pc) await readStats(state.pc);
      showStats();
    } catch (err) {
      console.warn("stats", err);
    }
    await sleep(1000);
  }
}

async function serverStats() {
  return (await state.control.request("stats")).stats;
}

function fmt(value, digits = 0, unit = "") {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${unit}`;
}

function showStats() {
  const inbound = state.inbound;
  const outbound = state.outbound;
  const server = state.server;
  $("stat-fps").textContent = fmt(inbound.framesPerSecond, 1);
  $("stat-decoded").textContent = fmt(inbound.framesDecoded);
  $("stat-freezes").textContent = fmt(inbound.freezeCount);
  const stalls = state.stalls.snapshot();
  const unsure = stalls.unsure ? `; ${stalls.unsure} unsure` : "";
  $("stat-stalls").textContent = `${stalls.count} (${fmt(stalls.totalMs / 1000, 1)} s)${unsure}`;
  $("stat-sent").textContent = outbound.frameWidth
    ? `${outbound.frameWidth}x${outbound.frameHeight} @ ${fmt(outbound.framesPerSecond, 0)}` : "–";
  $("stat-latency").textContent = latencyText();
  const lat = server.server_latency_ms || {};
  $("stat-server").textContent = `${fmt(lat.p50, 1, " ms")} p50, ${fmt(lat.p95, 1, " ms")} p95`;
  const stages = Object.entries(server.stages || {}).map(([name, s]) => `${name} ${fmt(s.p50_ms, 1)}`);
  $("stat-stages").textContent = stages.join(", ") || "–";
  $("stat-audio").textContent = fmt(server.audio_delay_ms, 0, " ms");
}

// The median of the last 60 returned frames, by RTP timestamp; from the stamp
// where only that measured; else why there is no figure.
function latencyText() {
  for (const samples of [state.rtpLatencies, state.latencies]) {
    const recent = samples.slice(-60).map((s) => s.ms);
    if (recent.length) return `${fmt(median(recent), 0, " ms")} (median)`;
  }
  if (!state.captureWorker) return "not measurable in this browser (no RTCRtpScriptTransform)";
  return state.connected ? "measuring…" : "–";
}

// ---- controls ----------------------------------------------------------------------
const LABELS = {
  cross: "cross (driver's expression)",
  relative: "relative (changes from the reference)",
  absolute: "absolute (driver's pose and shape)",
  paste: "avatar",
  crop: "avatar face only",
  side_by_side: "camera | avatar",
};

function fillSelect(select, values, selected) {
  for (const value of values) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = LABELS[value] || value;
    select.append(option);
  }
  select.value = selected ?? "";
}

// What the server wants every user to read first (e.g. its model does not fit real faces).
function showNotice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

// The selectors and the slider start from the settings every session starts with.
async function loadSettings() {
  try {
    const config = await api("/api/config");
    const settings = config.settings || {};
    showNotice(config.notice);
    state.defaultAvatar = settings.avatar ?? null;
    if (state.defaultAvatar) $("avatar-default").textContent = `server default (${state.defaultAvatar})`;
    fillSelect($("mode-select"), config.modes || [], settings.mode);
    fillSelect($("output-select"), config.outputs || [], settings.output);
    if (settings.strength !== undefined) {
      $("strength").value = settings.strength;
      $("strength-value").textContent = Number(settings.strength).toFixed(2);
    }
  } catch (err) {
    say(`cannot read the server's settings: ${err.message}`, true);
  }
}

async function loadAvatars() {
  try {
    const { avatars } = await api("/api/avatars");
    for (const name of avatars) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      $("avatar-select").append(option);
    }
  } catch (err) {
    say(`cannot list avatars: ${err.message}`, true);
  }
}

async function pickAvatar() {
  const name = $("avatar-select").value || null; // "" = back to the server's avatar
  const preview = $("avatar-preview");
  preview.hidden = !name;
  if (name) {
    preview.src = `/api/avatars/${encodeURIComponent(name)}`;
  }
  try {
    showSettings(await chooseAvatar(name));
    state.avatarChoice = name ? { name } : null; // what a new session gets again
    say(`avatar: ${state.settings.avatar ?? "server default"}`);
  } catch (err) {
    say(`avatar not changed: ${err.message}`, true);
    showAvatar(state.settings ? state.settings.avatar : null); // the list shows what is in use
  }
}

async function chooseAvatar(name) {
  return (await connectedControl().request("avatar", { name })).settings;
}

// The picture goes on the session's channel; the page keeps its bytes to give them
// to a new session after a reconnect.
async function uploadAvatar() {
  const file = $("avatar-file").files[0];
  if (!file) return;
  try {
    const bytes = await file.arrayBuffer();
    const limit = state.config && state.config.maxAvatarBytes;
    if (limit && bytes.byteLength > limit) {
      throw new Error(`the picture is ${(bytes.byteLength / 1e6).toFixed(1)} MB; the limit is ${(limit / 1e6).toFixed(1)} MB`);
    }
    showSettings(await connectedControl().upload(file.name, bytes));
    state.avatarChoice = { name: file.name, bytes };
    say(`avatar: ${file.name}${await pictureSize(file)}`);
    const preview = $("avatar-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  } catch (err) {
    say(`upload refused: ${err.message}`, true);
  } finally {
    $("avatar-file").value = "";
  }
}

// " (WxH)" of a picture file, or "" when the browser cannot tell.
async function pictureSize(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const size = ` (${bitmap.width}x${bitmap.height})`;
    bitmap.close();
    return size;
  } catch (err) {
    return "";
  }
}

// A new session starts from the server's settings: give it what the controls show.
function controlsBody() {
  const body = { strength: Number($("strength").value), mode: $("mode-select").value || null };
  if ($("output-select").value) body.output = $("output-select").value;
  return body;
}

async function changeSettings(body, done) {
  if (!channelOpen() && state.reconnecting) {
    say("not connected: the controls are sent to the next session"); // restoreSession does
    return;
  }
  try {
    showSettings(await sendSettings(body));
    if (done) say(done);
  } catch (err) {
    say(`settings not changed: ${err.message}`, true);
  }
}

function channelOpen() {
  return Boolean(state.control && state.control.open);
}

// The session's control channel, or an error saying there is no session.
function connectedControl() {
  if (!channelOpen()) throw new Error(state.reconnecting ? "reconnecting; try again in a moment" : "not connected; press Start first");
  return state.control;
}

async function sendSettings(body) {
  return (await connectedControl().request("settings", { settings: body })).settings;
}

// The controls show what the session uses, as the server last reported it
// (replies to this page's changes, and pushes of changes made elsewhere).
function showSettings(settings) {
  state.settings = { ...state.settings, ...settings };
  const { strength, mode, output, avatar } = state.settings;
  if (strength !== undefined) {
    $("strength").value = strength;
    $("strength-value").textContent = Number(strength).toFixed(2);
  }
  if (mode !== undefined) $("mode-select").value = mode ?? "";
  if (output !== undefined) $("output-select").value = output;
  showAvatar(avatar ?? null);
}

// The avatar list names the avatar in use: a preset, an upload (an entry of
// its own that cannot be picked again: the picture would have to be sent
// again), or the server's own.
function showAvatar(name) {
  const select = $("avatar-select");
  const uploaded = $("avatar-uploaded");
  const preset = [...select.options].find((o) => o !== uploaded && o.value && o.value === name);
  uploaded.hidden = Boolean(preset) || name === null || name === state.defaultAvatar;
  if (!uploaded.hidden) uploaded.textContent = `${name} (uploaded)`;
  if (preset) select.value = preset.value;
  else select.value = uploaded.hidden ? "" : uploaded.value;
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", hangUp);
$("avatar-select").addEventListener("change", pickAvatar);
$("avatar-file").addEventListener("change", uploadAvatar);
$("reset").addEventListener("click", () => changeSettings({ reset: true }, "reference reset"));
$("strength").addEventListener("input", () => {
  $("strength-value").textContent = Number($("strength").value).toFixed(2);
});
$("strength").addEventListener("change", () => {
  const strength = Number($("strength").value);
  changeSettings({ strength }, `strength ${strength.toFixed(2)}`);
});
$("mode-select").addEventListener("change", () => {
  const mode = $("mode-select").value || null;
  changeSettings({ mode }, `motion: ${mode || "model default"}`);
});
$("output-select").addEventListener("change", () => {
  const output = $("output-select").value;
  changeSettings({ output }, `showing: ${LABELS[output] || output}`);
});
window.addEventListener("pagehide", () => { if (state.session || state.reconnecting) hangUp(); });

loadSettings();
loadAvatars();
if (params.get("autostart") === "1") start();
