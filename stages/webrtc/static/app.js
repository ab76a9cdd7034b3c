// The vicocam page: sends the camera to the server, shows the returned avatar,
// and drives the session's settings. window.vicocam exposes the live state
// (used by the automated browser test and the benchmark).

import { CONTROL_LABEL, ControlChannel } from "./control.js";
import { LatencyMatcher } from "./latency.js";
import { measureCaptureTimes, RtpLatency } from "./rtp_latency.js";
import { StallCounter } from "./stalls.js";
import { StampReader } from "./stamp.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// No token in the page: opening the printed /?token=... URL set an HttpOnly
// cookie that the page's same-origin requests carry.
const authHeaders = {};
const LATENCY_KEEP = 20000;

const state = {
  connected: false,
  error: null,
  session: null,
  latencies: [], // {t, ms, index}: capture -> display of stamped frames
  latencyDropped: 0, // returned stamped frames that matched no capture
  rtpLatencies: [], // {t, ms}: capture -> display of any camera, by RTP timestamp
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
  if (state.session) state.server = await serverStats().catch(() => state.server);
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
    openControl(pc);
    state.rtp = new RtpLatency();
    state.captureWorker = measureCaptureTimes(pc, state.rtp);
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
    await state.control.opened(5000); // until then (or without it), controls go over HTTP
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

// Controls and live stats travel on a data channel of the session itself, opened
// before the offer so that the offer carries it.
function openControl(pc) {
  state.control = new ControlChannel(pc.createDataChannel(CONTROL_LABEL), {
    settings: (message) => showSettings(message.settings),
    stats: (message) => { state.server = message.stats; },
    timing: (message) => state.rtp && state.rtp.serverFrames(message.frames),
    error: (message) => say(`the server refused a control: ${message.error}`, true),
  });
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
  state.control = null;
  if (state.pc) state.pc.close();
  if (state.captureWorker) state.captureWorker.terminate();
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

// ---- capture -> display latency -----------------------------------------------------
// Of any camera: a returned frame's RTP timestamp leads, through the server's
// timing messages, to the camera frame it was made from and the time that
// frame was captured (rtp_latency.js). Of the stamped test camera also (the
// benchmarks read it): each returned frame's stamped index is matched with the
// time the same index was captured (local preview; see latency.js for how a
// looping clip's repeated indices are told apart).
function keepSamples(list, samples) {
  for (const sample of samples) list.push(sample);
  if (list.length > LATENCY_KEEP) list.splice(0, list.length - LATENCY_KEEP);
}

function watchLatency() {
  const local = $("local");
  const remote = $("remote");
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const matcher = new LatencyMatcher();
  const localReader = new StampReader();
  const remoteReader = new StampReader();
  const rtp = state.rtp;

  const onLocal = (now, meta) => {
    rtp.previewed(meta.captureTime);
    const index = localReader.read(local);
    if (index !== null) matcher.local(index, meta.captureTime ?? meta.presentationTime ?? now);
    keepSamples(state.latencies, matcher.resolve(performance.now()));
    state.latencyDropped = matcher.dropped;
    local.requestVideoFrameCallback(onLocal);
  };
  const onRemote = (now, meta) => {
    const shown = meta.expectedDisplayTime ?? now;
    if (meta.rtpTimestamp !== undefined) rtp.shown(meta.rtpTimestamp, shown);
    keepSamples(state.rtpLatencies, rtp.resolve(performance.now()));
    const index = remoteReader.read(remote);
    if (index !== null) matcher.remote(index, shown);
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
      // The channel pushes the server's stats; ask over HTTP only without it.
      if (state.session && !channelOpen()) state.server = await serverStats();
      showStats();
    } catch (err) {
      console.warn("stats", err);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function serverStats() {
  if (channelOpen()) return (await state.control.request("stats")).stats;
  return sessionApi("/stats");
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
    say(`avatar: ${state.settings.avatar ?? "server default"}`);
  } catch (err) {
    say(`avatar not changed: ${err.message}`, true);
    showAvatar(state.settings ? state.settings.avatar : null); // the list shows what is in use
  }
}

async function chooseAvatar(name) {
  if (channelOpen()) return (await state.control.request("avatar", { name })).settings;
  const reply = await sessionApi("/avatar", postJson("", { name }));
  return { avatar: reply.avatar ?? state.defaultAvatar };
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
    showSettings({ avatar: reply.avatar }); // the server's reply names the avatar in use
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
    showSettings(await sendSettings(body));
    if (done) say(done);
  } catch (err) {
    say(`settings not changed: ${err.message}`, true);
  }
}

function channelOpen() {
  return Boolean(state.control && state.control.open);
}

// Over the session's control channel; over HTTP only while it is not open.
async function sendSettings(body) {
  if (channelOpen()) return (await state.control.request("settings", { settings: body })).settings;
  return sessionApi("/settings", postJson("", body));
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
window.addEventListener("pagehide", () => { if (state.session) hangUp(); });

loadSettings();
loadAvatars();
if (params.get("autostart") === "1") start();
