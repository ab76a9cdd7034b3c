"""``vicocam bench webrtc``: a real browser through ``vicocam serve`` and back.

Question answered: with a given per-session transform, what frame rate,
freezes and capture-to-display latency does a browser peer see on this
machine? Headless Chromium sends a stamped fake camera (``.y4m``) over
loopback WebRTC to an in-process server; the page reads the stamp back from
the returned video (see `stages.webrtc.browser`).

Figures (flat):
    frames_decoded, fps: frames the page decoded over the measured window.
    freezes: the change of getStats ``freezeCount`` over the window; the
        browser counts a freeze when the gap between two rendered frames
        exceeds max(3 x the average frame duration, average + 150 ms)
        (W3C webrtc-stats). ``None`` if the browser does not report it.
    latency_*_ms: capture (the fake camera's frame, local preview) to
        display (the returned frame) per stamped frame; ``first_third`` and
        ``last_third`` split the window by time, to show drift.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from pipeline.metrics import percentile
from stages.webrtc.session import StageFactory

STAGES: dict[str, str] = {"identity": "stages.webrtc.session:identity_factory"}
"""Named transforms for ``stage=``; a callable factory may be passed instead."""

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
    return out


def run_webrtc_bench(seconds: float = 30.0,
                     stage: str | Callable[..., Any] = "identity", *,
                     width: int = 640, height: int = 480, fps: int = 30,
                     warmup_s: float = 3.0, chromium: str | None = None) -> dict[str, Any]:
    """Measure one browser session for ``seconds`` (after ``warmup_s``); flat figures."""
    from stages.webrtc.browser import BrowserRunConfig, run_browser_peer
    from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer

    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1"), _factory(stage))
    config = BrowserRunConfig(seconds=seconds, warmup_s=warmup_s, width=width, height=height,
                              fps=fps, clip_s=4.0, chromium=chromium)
    with ServerThread(server) as url:
        result = run_browser_peer(url, config)
    server_latency = result.server.get("server_latency_ms") or {}
    return {
        "stage": stage if isinstance(stage, str) else getattr(stage, "__name__", "custom"),
        "width": width,
        "height": height,
        "camera_fps": fps,
        "seconds": round(result.seconds, 2),
        "frames_decoded": result.frames_decoded,
        "fps": round(result.fps, 2),
        "freezes": result.freezes,
        "freeze_definition": FREEZE_DEFINITION,
        **latency_figures(result.latencies),
        "received_width": result.inbound.get("frameWidth"),
        "received_height": result.inbound.get("frameHeight"),
        "browser_send_fps": result.outbound.get("framesPerSecond"),
        "server_latency_p50_ms": server_latency.get("p50"),
        "server_frames_replaced": result.server.get("frames_replaced"),
    }


def bench(seconds: float | None) -> dict[str, Any]:
    """Adapter for ``vicocam bench webrtc [--seconds S]`` (default 30 s, identity)."""
    return run_webrtc_bench(seconds=seconds or 30.0)
