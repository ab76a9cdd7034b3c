// The vicocam page: sends the camera to the server, shows the returned avatar,
// and drives the session's settings. window.vicocam exposes the live state
// (used by the automated browser test and the benchmark).

import { LatencyMatcher } from "./latency.js";
import { StallCounter } from "./stalls.js";
import { StampReader } from "./stamp.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token");
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
const LATENCY_KEEP = 20000;

const state = {
  connected: false,
  error: null,
  session: null,
  latencies: [], // {t, ms, index}: capture -> display of stamped frames
  latencyDropped: 0, // returned stamped frames that matched no capture
  stalls: new StallCounter(), // gaps over 100 ms between displayed returned frames
  inbound: {},
  outbound: {},
  server: {},
  settings: null, // the session's settings as the server last confirmed them
  pc: null,
};
window.vicocam = state;

// Fresh counters right now (the panel itself refreshes once a second).
state.snapshot = async () => {
  if (state.pc) await readStats(state.pc);
  if (state.session) state.server = await sessionApi("/stats").catch(() => state.server);
  return {
    now: performance.now(), inbound: state.inbound, outbound: state.outbound, server: state.server,
    stalls: state.stalls.snapshot(),
  };
};

// ---- server API ---------------------------------------------------------------
async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { ...authHeaders, ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function sessionApi(suffix, options) {
  if (!state.session) throw new Error("not connected");
  return api(`/api/sessions/${state.session}${suffix}`, options);
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
  try {
    setStatus("starting camera…");
    const config = await api("/api/config");
    const camera = await getCamera();
    $("local").srcObject = camera;
    const pc = new RTCPeerConnection({ iceServers: config.iceServers || [] });
    state.pc = pc;
    camera.getTracks().forEach((track) => pc.addTrack(track, camera));
    const remote = new MediaStream();
    $("remote").srcObject = remote;
    pc.addEventListener("track", (event) => remote.addTrack(event.track));
    pc.addEventListener("connectionstatechange", () => onConnectionState(pc));
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, 3000);
    setStatus("connecting…");
    const answer = await api("/api/offer", postJson("/api/offer", {
      sdp: pc.localDescription.sdp, type: "offer",
    }));
    state.session = answer.session;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await keepResolution(pc);
    await sendControls();
    $("stop").disabled = false;
    watchLatency();
    watchStalls();
    pollStats();
  } catch (err) {
    say(`could not start: ${err.message}`, true);
    setStatus("failed");
    $("start").disabled = false;
  }
}

function onConnectionState(pc) {
  setStatus(pc.connectionState);
  state.connected = pc.connectionState === "connected";
  if (pc.connectionState === "failed") say("the connection failed (network or server gone)", true);
}

async function hangUp() {
  $("stop").disabled = true;
  const session = state.session;
  state.session = null;
  if (state.pc) state.pc.close();
  for (const id of ["local", "remote"]) {
    const stream = $(id).srcObject;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    $(id).srcObject = null;
  }
  state.connected = false;
  setStatus("idle");
  $("start").disabled = false;
  if (session) {
    await api(`/api/sessions/${session}`, { method: "DELETE" }).catch(() => {});
  }
}

// ---- latency from the stamped frame index ------------------------------------------
// When the camera carries the frame-index stamp (the test camera does), each
// returned frame's index is matched with the time the same index was captured
// (local preview), giving capture -> display latency (see latency.js for how a
// looping clip's repeated indices are told apart). Without a stamp, nothing.
function watchLatency() {
  const local = $("local");
  const remote = $("remote");
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const matcher = new LatencyMatcher();
  const localReader = new StampReader();
  const remoteReader = new StampReader();

  const onLocal = (now, meta) => {
    const index = localReader.read(local);
    if (index !== null) matcher.local(index, meta.captureTime ?? meta.presentationTime ?? now);
    for (const sample of matcher.resolve(performance.now())) {
      state.latencies.push(sample);
      if (state.latencies.length > LATENCY_KEEP) state.latencies.shift();
    }
    state.latencyDropped = matcher.dropped;
    local.requestVideoFrameCallback(onLocal);
  };
  const onRemote = (now, meta) => {
    const index = remoteReader.read(remote);
    if (index !== null) matcher.remote(index, meta.expectedDisplayTime ?? now);
    remote.requestVideoFrameCallback(onRemote);
  };
  local.requestVideoFrameCallback(onLocal);
  remote.requestVideoFrameCallback(onRemote);
}

// ---- stalls of the returned video (any camera, stamped or not) ---------------------
function watchStalls() {
  const remote = $("remote");
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const onFrame = (now, meta) => {
    state.stalls.frame(meta.expectedDisplayTime ?? now);
    remote.requestVideoFrameCallback(onFrame);
  };
  remote.requestVideoFrameCallback(onFrame);
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

async function pollStats() {
  const pc = state.pc;
  while (state.pc === pc && pc.connectionState !== "closed") {
    try {
      await readStats(pc);
      if (state.session) state.server = await sessionApi("/stats");
      showStats();
    } catch (err) {
      console.warn("stats", err);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
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
  $("stat-stalls").textContent = `${stalls.count} (${fmt(stalls.totalMs / 1000, 1)} s)`;
  $("stat-sent").textContent = outbound.frameWidth
    ? `${outbound.frameWidth}x${outbound.frameHeight} @ ${fmt(outbound.framesPerSecond, 0)}` : "–";
  const recent = state.latencies.slice(-60).map((s) => s.ms);
  $("stat-latency").textContent = recent.length ? `${fmt(median(recent), 0, " ms")} (median)` : "no stamp";
  const lat = server.server_latency_ms || {};
  $("stat-server").textContent = `${fmt(lat.p50, 1, " ms")} p50, ${fmt(lat.p95, 1, " ms")} p95`;
  const stages = Object.entries(server.stages || {}).map(([name, s]) => `${name} ${fmt(s.p50_ms, 1)}`);
  $("stat-stages").textContent = stages.join(", ") || "–";
  $("stat-audio").textContent = fmt(server.audio_delay_ms, 0, " ms");
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
    preview.src = `/api/avatars/${encodeURIComponent(name)}${token ? `?token=${token}` : ""}`;
  }
  try {
    await sessionApi("/avatar", postJson("", { name }));
    say(`avatar: ${name || "server default"}`);
  } catch (err) {
    say(`avatar not changed: ${err.message}`, true);
  }
}

async function uploadAvatar() {
  const file = $("avatar-file").files[0];
  if (!file) return;
  try {
    const reply = await sessionApi("/avatar", {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": file.name },
      body: file,
    });
    say(`avatar: ${reply.avatar} (${reply.width}x${reply.height})`);
    const preview = $("avatar-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  } catch (err) {
    say(`upload refused: ${err.message}`, true);
  } finally {
    $("avatar-file").value = "";
  }
}

// A new session starts from the server's settings: give it what the controls show.
async function sendControls() {
  const body = { strength: Number($("strength").value), mode: $("mode-select").value || null };
  if ($("output-select").value) body.output = $("output-select").value;
  await changeSettings(body);
}

async function changeSettings(body, done) {
  try {
    state.settings = await sessionApi("/settings", postJson("", body));
    if (done) say(done);
  } catch (err) {
    say(`settings not changed: ${err.message}`, true);
  }
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
window.addEventListener("pagehide", () => { if (state.session) hangUp(); });

loadSettings();
loadAvatars();
if (params.get("autostart") === "1") start();
