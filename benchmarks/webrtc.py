"""``vicocam bench webrtc``: a real browser through ``vicocam serve`` and back.

Question answered: with a given per-session transform, what frame rate,
freezes and capture-to-display latency does a browser peer see on this
machine? Headless Chromium sends a stamped fake camera (``.y4m``) over
loopback WebRTC to an in-process server; the page reads the stamp back from
the returned video (see `benchmarks.browser`).

Stages (``stage=``):
    identity: the camera comes back unchanged (``vicocam serve --identity``):
        the cost of the transport alone. The camera is the test pattern.
    model: the avatar path ``vicocam serve`` runs by default, built the same
        way (`pipeline.app.serving.open_avatar_service`: the bundled demo model,
        else random weights of the default configuration, default backend).
        The camera is a held-out synthetic person (a face to follow); the
        server relays the stamp from each camera frame to the avatar frame
        it drove (`StampRelay`), so latency is camera to avatar on screen.

Figures (flat):
    frames_decoded, fps: frames the page decoded over the measured window.
    freezes: the change of getStats ``freezeCount`` over the window; the
        browser counts a freeze when the gap between two rendered frames
        exceeds max(3 x the average frame duration, average + 150 ms)
        (W3C webrtc-stats). ``None`` if the browser does not report it.
    stalls_100ms, stall_ms_total, stalls_per_min: gaps over 100 ms between
        displayed returned frames (the page's own counter, ``static/stalls.js``):
        the hitches a person sees that ``freezes`` does not count.
    stalls_100ms_unsure, stall_unsure_ms_total: gaps over 100 ms between the
        page's frame callbacks across which the video presented frames at
        under 100 ms apart on average: the page's script ran late, the video
        may not have stalled (``static/stalls.js``). Not in ``stalls_100ms``.
    pinned: the cores the browser and the server ran on (``None``: unpinned).
        Pinned is the default: in use they run on different machines.
    latency_*_ms: capture (the fake camera's frame, local preview) to
        display (the returned frame) per stamped frame; ``first_third`` and
        ``last_third`` split the window by time, to show drift.
    latency_unmatched: returned stamped frames left out of the latency
        figures because their capture could not be told apart from the same
        index a loop of the camera clip earlier (``static/latency.js``).
    server_stage_p50_ms: per-stage p50 over the session's last 60 frames.
    server_stage_sum_growth: the sum of the stages' p50s at the window's end over
        that at its start: above 1, the stages themselves slowed (the machine
        was busier), which raises ``latency_growth`` without frames queueing.
    server_latency_growth: the server's in->out p50 (its last 60 frames) at the
        window's end over that at its start: how much of ``latency_growth``
        happened inside the server.
    browser_receive: the browser's receiver over the window (`receive_figures`).
    browser_receive_to_present_p50_ms: a returned frame's last packet received
        to its presentation, p50 over the window (the page's own clock).
    browser_display_estimate_p50_ms: Chromium's expected display time of a
        returned frame less its presentation, p50 over the window: an
        estimate the latencies no longer use (``static/app.js``).
    browser_send: the browser's camera sender over the window (`send_figures`):
        its encode time and the time its packets waited in its pacer.
    server_receive_p50_ms, server_receive_p95_ms: from a camera frame's last
        packet to its decoded picture reaching the server's pipeline (aiortc's
        decoding and hand-off; before the in->out clock starts), its last 60
        frames at the window's end.
    server_stalls_in_100ms, server_stalls_out_100ms, server_stalls_encoded_100ms
        (and ``_ms_total``): gaps over 100 ms between frames reaching the
        server, leaving its pipeline and leaving aiortc's sender (its encoder,
        or with ``encoder`` "sink" its packing of what the sink encoded) over
        the window: a stall the page counts that the sender did not begin
        began on the way (loopback, the browser's decoding and display).
    encoder: where the returned video was encoded: "sink" (the session's
        last stage, whose time then includes it) or "aiortc" (its executor).
    server_encoded_dropped: encoded frames the outgoing track dropped because
        the event loop fell behind (then it waits for a keyframe).
    process_gc_pauses: per generation of CPython's cycle collector, the
        collections in this process (the server's) over the browser's whole
        session (connection, warm-up and window), the longest and the total
        pause in ms. The server's heap is frozen once
        built, as ``vicocam serve`` does (`pipeline.heap`).
    model, trained: which weights ran (model stage only).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.browser import BrowserRunResult, CameraClip
from pipeline.metrics import percentile
from stages.webrtc.peer_session import StageFactory

if TYPE_CHECKING:
    from stages.webrtc.peer_session import SessionConfig
    from stages.webrtc.server import WebRTCServer

STAGES: dict[str, str] = {"identity": "stages.webrtc.peer_session:identity_factory"}
"""Named transforms for ``stage=`` (besides ``"model"``); a callable factory may be passed."""

MODEL = "model"

FREEZE_DEFINITION = ("getStats freezeCount: gap between rendered frames > "
                     "max(3 x average frame duration, average + 150 ms)")


def _factory(stage: str | StageFactory) -> StageFactory:
    if callable(stage):
        return stage
    target = STAGES.get(stage, stage)
    module, _, name = target.partition(":")
    if not name:
        raise ValueError(f"unknown stage {stage!r}; use one of {sorted(STAGES)} or module:function")
    factory: StageFactory = getattr(importlib.import_module(module), name)
    return factory


def _p(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return round(value, 1) if math.isfinite(value) else None


def latency_figures(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """Percentiles of ``(time s, latency ms)`` samples, overall and per time third."""
    ms = [m for _, m in samples]
    out: dict[str, Any] = {
        "latency_p50_ms": _p(ms, 50),
        "latency_p95_ms": _p(ms, 95),
        "latency_samples": len(ms),
    }
    if samples:
        t0, t1 = samples[0][0], samples[-1][0]
        third = (t1 - t0) / 3
        out["latency_p50_ms_first_third"] = _p([m for t, m in samples if t <= t0 + third], 50)
        out["latency_p50_ms_last_third"] = _p([m for t, m in samples if t >= t1 - third], 50)
    else:
        out["latency_p50_ms_first_third"] = out["latency_p50_ms_last_third"] = None
    out["latency_growth"] = _ratio(out["latency_p50_ms_last_third"],
                                   out["latency_p50_ms_first_third"])
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def server_wait_figures(in_out_p50_ms: float | None, stage_p50_ms: dict[str, float | None],
                        service_p50_ms: float | None = None) -> dict[str, Any]:
    """The sum of the server's stage p50s and its in->out p50 over that sum; the
    p50 of the frames' own stage time (service, `pipeline.legs`) and in->out over
    it. 1.0: frames never waited between stages."""
    total = _stage_sum(stage_p50_ms)
    if total is not None:
        total = round(total, 2)
    return {"server_stage_p50_sum_ms": total,
            "server_latency_vs_stages": _ratio(in_out_p50_ms, total),
            "server_service_p50_ms": service_p50_ms,
            "server_latency_vs_service": _ratio(in_out_p50_ms, service_p50_ms)}


@dataclass(frozen=True, slots=True)
class _Served:
    """What the server runs for one benchmark, and the camera that suits it."""

    server: WebRTCServer
    camera: CameraClip
    facts: dict[str, Any]


@contextlib.contextmanager
def _served(stage: str | StageFactory, session: SessionConfig) -> Iterator[_Served]:
    from stages.webrtc.server import ServerConfig, WebRTCServer

    config = ServerConfig(port=0, ice_host="127.0.0.1", session=session)
    if stage != MODEL:
        yield _Served(WebRTCServer(config, _factory(stage)), "pattern", {})
        return
    from pipeline.app.serving import ServeConfig, open_avatar_service
    from stages.webrtc.stamp_relay import StampRelay

    service = open_avatar_service(ServeConfig())
    try:
        server = WebRTCServer(replace(config, settings=service.settings),
                              StampRelay(service.factory), prepare_avatar=service.factory.prepare)
        facts = {"model": service.bundle.label, "trained": service.bundle.trained}
        yield _Served(server, "person", facts)
    finally:
        service.close()


def run_webrtc_bench(seconds: float = 30.0,
                     stage: str | StageFactory = "identity", *,
                     width: int = 640, height: int = 480, fps: int = 30,
                     warmup_s: float = 3.0, chromium: str | None = None,
                     camera: CameraClip | None = None, pin: bool = True,
                     stage_threads: int | None = None,
                     adaptive_in_flight: bool = True,
                     freeze_heap: bool = True,
                     encode_in_sink: bool = True,
                     burners: int = 0) -> dict[str, Any]:
    """Measure one browser session for ``seconds`` (after ``warmup_s``); flat figures.

    ``stage``: ``"identity"``, ``"model"`` (see the module docstring), a
    ``module:function`` factory or a factory itself. ``camera`` overrides what
    the fake camera shows (the stage's own choice by default). ``pin``: the
    browser on one core, this process (the server) on the others.
    ``stage_threads``: the sessions' worker threads for stages (``None``: the
    runtime's default). ``adaptive_in_flight``: the sessions' head limit follows
    what pays (`pipeline.in_flight`), as ``vicocam serve``; ``False`` keeps it
    fixed. ``freeze_heap``: the server runs in a frozen heap (`pipeline.heap`), as
    ``vicocam serve``.
    ``encode_in_sink``: the sessions encode the returned video in their sink
    stage (`stages.webrtc.aiortc_patches.encoder.SinkVp8Encoder`), as
    ``vicocam serve``; ``False`` leaves it to aiortc's executor. ``burners``:
    processes spinning on every core beside both for the whole run
    (`benchmarks.burners`; started before the pinning, so not pinned).
    """
    from benchmarks.browser import BrowserRunConfig, run_browser_peer
    from benchmarks.burners import burners as busy_neighbours
    from pipeline.heap import GcPauses, frozen_heap
    from stages.webrtc.peer_session import SessionConfig
    from stages.webrtc.server import ServerThread

    cores = split_cores() if pin else None
    session = SessionConfig(stage_threads=stage_threads, adaptive_in_flight=adaptive_in_flight,
                            encode_in_sink=encode_in_sink)
    with busy_neighbours(burners), pinned(cores[1] if cores else None), \
            _served(stage, session) as served:
        browser = BrowserRunConfig(seconds=seconds, warmup_s=warmup_s, width=width,
                                   height=height, fps=fps, clip_s=4.0, chromium=chromium,
                                   camera=camera or served.camera,
                                   cpus=cores[0] if cores else None)
        heap = frozen_heap() if freeze_heap else contextlib.nullcontext()
        with heap, GcPauses().recording() as pauses, \
                ServerThread(served.server) as url:
            result = run_browser_peer(url, browser)
    placement = None if cores is None else {"browser": cores[0], "server": cores[1]}
    return {"stage": _stage_name(stage), "camera": browser.camera, "pinned": placement,
            "stage_threads": stage_threads, "adaptive_in_flight": adaptive_in_flight,
            "heap_frozen": freeze_heap, "encoder": result.server.get("encoder"),
            "burners": burners,
            **served.facts, **_figures(result, width, height, fps),
            "process_gc_pauses": pauses.figures()}


def split_cores() -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(browser cores, server cores)``: the first core for the browser, the rest for
    the server; ``None`` with fewer than two cores (nothing to split)."""
    cores = sorted(os.sched_getaffinity(0))
    return None if len(cores) < 2 else ((cores[0],), tuple(cores[1:]))


@contextlib.contextmanager
def pinned(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """Run every thread of this process (and the ones it starts) on ``cpus``, then restore."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    _set_all_threads(set(cpus))
    try:
        yield
    finally:
        _set_all_threads(before)


def _set_all_threads(cpus: set[int]) -> None:
    # Linux applies affinity per thread; threads started later inherit their creator's.
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def _stage_name(stage: str | StageFactory) -> str:
    return stage if isinstance(stage, str) else getattr(stage, "__name__", "custom")


def _figures(result: BrowserRunResult, width: int, height: int, fps: int) -> dict[str, Any]:
    server = result.server
    server_latency = server.get("server_latency_ms") or {}
    stage_p50 = _stage_p50(server)
    return {
        "width": width,
        "height": height,
        "camera_fps": fps,
        "seconds": round(result.seconds, 2),
        "frames_decoded": result.frames_decoded,
        "fps": round(result.fps, 2),
        "freezes": result.freezes,
        "freeze_definition": FREEZE_DEFINITION,
        "stalls_100ms": result.stalls,
        "stall_ms_total": round(result.stall_ms, 1),
        "stalls_100ms_unsure": result.stalls_unsure,
        "stall_unsure_ms_total": round(result.stall_unsure_ms, 1),
        "stalls_per_min": round(result.stalls * 60 / result.seconds, 2) if result.seconds else None,
        **latency_figures(result.latencies),
        "latency_unmatched": result.latency_unmatched,
        "received_width": result.inbound.get("frameWidth"),
        "received_height": result.inbound.get("frameHeight"),
        "browser_send_fps": result.outbound.get("framesPerSecond"),
        "server_fps_in": server.get("fps_in"),
        "server_fps_out": server.get("fps_out"),
        "server_latency_p50_ms": server_latency.get("p50"),
        "server_latency_p95_ms": server_latency.get("p95"),
        "server_receive_p50_ms": (server.get("receive_ms") or {}).get("p50"),
        "server_receive_p95_ms": (server.get("receive_ms") or {}).get("p95"),
        "server_frames_replaced": server.get("frames_replaced"),
        "server_encoded_dropped": server.get("encoded_dropped"),
        "server_drops": server.get("drops"),
        "server_stage_p50_ms": stage_p50,
        **server_wait_figures(server_latency.get("p50"), stage_p50, server.get("service_p50_ms")),
        "server_legs_ms": server.get("legs_ms"),
        **server_stall_figures(result.server_start, server),
        "server_stage_sum_growth": _ratio(_stage_sum(stage_p50),
                                          _stage_sum(_stage_p50(result.server_start))),
        "server_latency_growth": _ratio(server_latency.get("p50"),
                                        (result.server_start.get("server_latency_ms") or {})
                                        .get("p50")),
        "browser_receive": receive_figures(result.inbound_start, result.inbound),
        "browser_receive_to_present_p50_ms": _p(result.receive_to_present_ms, 50),
        "browser_display_estimate_p50_ms": _p(result.display_estimate_ms, 50),
        "browser_send": send_figures(result.outbound_start, result.outbound),
    }


_RECEIVE_COUNTS = ("packetsLost", "nackCount", "pliCount", "firCount", "framesDropped",
                   "keyFramesDecoded")
_RECEIVE_MEANS_MS = {"jitter_buffer_ms": ("jitterBufferDelay", "jitterBufferEmittedCount"),
                     "decode_ms": ("totalDecodeTime", "framesDecoded"),
                     "processing_ms": ("totalProcessingDelay", "framesDecoded")}


_SEND_COUNTS = ("framesEncoded", "keyFramesEncoded", "nackCount", "pliCount",
                "retransmittedPacketsSent")
_SEND_MEANS_MS = {"encode_ms": ("totalEncodeTime", "framesEncoded"),
                  "packet_send_delay_ms": ("totalPacketSendDelay", "packetsSent")}


def receive_figures(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """What the browser's receiver did over the window, from its inbound-rtp stats
    at the start and the end: losses, retransmission and keyframe requests, frames
    dropped (counts), and the mean jitter-buffer, decode and processing time per
    frame (ms). A figure the browser does not report is left out."""
    return _window_figures(start, end, _RECEIVE_COUNTS, _RECEIVE_MEANS_MS)


def send_figures(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """What the browser's camera sender did over the window, from its outbound-rtp
    stats: frames and keyframes encoded, NACKs and PLIs it got, packets resent
    (counts), the mean encode time per frame and the mean time a packet waited in
    the pacer before it was sent (ms): the upload half's own delays."""
    return _window_figures(start, end, _SEND_COUNTS, _SEND_MEANS_MS)


def _window_figures(start: dict[str, Any], end: dict[str, Any], counts: tuple[str, ...],
                    means_ms: dict[str, tuple[str, str]]) -> dict[str, Any]:
    def delta(key: str) -> float | None:
        if key not in start or key not in end:
            return None
        return float(end[key]) - float(start[key])

    out: dict[str, Any] = {}
    for key in counts:
        change = delta(key)
        if change is not None:
            out[key] = int(change)
    for name, (total, count) in means_ms.items():
        seconds, frames = delta(total), delta(count)
        if seconds is not None and frames:
            out[name] = round(seconds / frames * 1e3, 2)
    return out


def _stage_p50(stats: dict[str, Any]) -> dict[str, float | None]:
    """Each stage's p50 (ms, its last 60 frames) in a session's stats."""
    return {name: s.get("p50_ms") for name, s in (stats.get("stages") or {}).items()}


def _stage_sum(stage_p50_ms: dict[str, float | None]) -> float | None:
    """The sum of the stage p50s that are known; ``None`` when none is."""
    known = [ms for ms in stage_p50_ms.values() if ms is not None]
    return sum(known) if known else None


def server_stall_figures(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """Gaps over 100 ms between frames reaching the server (``in``), leaving its
    pipeline (``out``) and leaving aiortc's sender (``encoded``) over the
    window, from the session's stats at its start and end: with the page's
    ``stalls_100ms``, where a stall began. ``None``: not reported."""
    out: dict[str, Any] = {}
    for point in ("in", "out", "encoded"):
        first, last = start.get(f"stalls_{point}"), end.get(f"stalls_{point}")
        if first is None or last is None:
            out[f"server_stalls_{point}_100ms"] = out[f"server_stall_{point}_ms_total"] = None
            continue
        out[f"server_stalls_{point}_100ms"] = last["count"] - first["count"]
        out[f"server_stall_{point}_ms_total"] = round(last["total_ms"] - first["total_ms"], 1)
    return out
