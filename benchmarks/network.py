"""``vicocam bench network --json PATH``: the avatar over a bad network.

`vicocam serve` as its command builds it (bundled model, batching) runs in
this process; for each link condition a `vicocam client` peer, in a process
of its own (the server's CPU is then the server's), sends a `StampedCamera`
(the synthetic person at 640 x 480, 30 fps, each frame's index stamped in)
for ``seconds`` over an impaired link (`stages.webrtc.impairment`: every
packet of the call, both ways, through a seeded shaper) and books each
returned frame: when it was decoded and, from its stamp, its capture-to-
return latency. The conditions are the issue's: clean, 2 % and 5 % loss,
40 +- 10 ms delay, a 1 Mbit/s cap, and a 3 s blackout.

Per condition: returned fps (from the first returned frame plus
``warmup_s`` to the end), gaps between returned frames (over 200 ms, over
1 s, the longest), latency p50/p95, frames whose stamp could not be read
(a damaged picture: decoded from a frame whose reference was lost), what
the link did, and what the peer's frame assembler did (frames given up,
picture-loss requests). For a blackout: the time from the link coming back
to the next returned frame, and to the next one with a readable stamp.

``link="kernel"`` (``vicocam bench network --mode kernel``) puts the same
conditions on ``lo`` with the kernel's ``netem`` instead (`stages.webrtc.netem`;
root, in a network namespace of its own, and a kernel that has netem: the
machines here do not).

A chart beside the JSON shows returned fps over time per condition.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.soak_peers import LOOPBACK, StampedCamera, latency_summary
from pipeline.frame import Frame
from pipeline.stage import StageBase
from stages.stamp import read_stamp

CONDITIONS: tuple[tuple[str, str], ...] = (
    ("clean", "clean"),
    ("loss 2%", "loss=2%"),
    ("loss 5%", "loss=5%"),
    ("delay 40 +- 10 ms", "delay=40ms,jitter=10ms"),
    ("cap 1 Mbit/s", "rate=1mbit"),
    ("blackout 3 s", "blackout={at}s+3s"),
)
"""``(label, --network conditions)``; ``{at}`` is the blackout's start."""
LINKS = ("user", "kernel")
GAP_S = 0.2
FREEZE_S = 1.0
TARGETS = {"loss2_fps_min": 25.0, "loss2_freezes_over_1s_max": 0,
           "blackout_recovery_s_max": 1.0}


@dataclass(frozen=True, slots=True)
class NetworkBenchConfig:
    """Knobs of `run_network_bench`.

    Attributes:
        seconds: each condition's call length.
        warmup_s: returned frames this soon after the first one are not counted.
        blackout_at_s: when the blackout starts, from the link's installation.
        seed: the link's random seed.
        link: ``"user"`` (the peer's sockets shaped in its process) or
            ``"kernel"`` (netem on ``lo``).
    """

    seconds: float = 20.0
    warmup_s: float = 2.0
    blackout_at_s: float = 9.0
    seed: int = 1
    link: str = "user"

    def __post_init__(self) -> None:
        if self.link not in LINKS:
            raise ValueError(f"the network bench's link is one of {LINKS}, got {self.link!r}")
        if self.seconds < self.blackout_at_s + 6.0:
            raise ValueError(f"the network bench needs >= {self.blackout_at_s + 6:g} s per "
                             f"condition (a blackout at {self.blackout_at_s:g} s, 3 s long, "
                             "and time to come back)")

    def spec(self, template: str) -> str:
        spec = template.format(at=f"{self.blackout_at_s:g}")
        return spec if spec == "clean" else f"{spec},seed={self.seed}"


class ReturnLog(StageBase):
    """The peer's sink: when each returned frame was decoded, and its latency (or None)."""

    name = "return_log"
    blocking = False

    def __init__(self, camera: StampedCamera) -> None:
        self.camera = camera
        self.frames: list[tuple[float, float | None]] = []

    def process(self, frame: Frame) -> Frame:
        now = time.monotonic_ns()
        index = read_stamp(frame.image)
        sent = None if index is None else self.camera.captured_ns(index)
        self.frames.append((now / 1e9, None if sent is None else (now - sent) / 1e6))
        return frame


def peer_call(url: str, spec: str | None, seconds: float) -> dict[str, Any]:
    """In the peer's process: one call over a link of ``spec``; what came back.

    ``spec`` ``None``: the call's own sockets are left as they are (the
    kernel impairs the link).
    """
    from benchmarks.sessions import render_clip
    from stages.webrtc.client import ClientConfig, run_client
    from stages.webrtc.impairment import parse_link

    camera = StampedCamera(render_clip())
    log = ReturnLog(camera)
    links: list[Any] = []
    config = ClientConfig(server=url, ice_host=LOOPBACK, duration_s=seconds,
                          network=None if spec is None else parse_link(spec),
                          connect_timeout_s=30.0,
                          # The same call must recover: a new call would hide a frozen one.
                          reconnect=False)
    report = asyncio.run(run_client(config, camera, log, on_link=links.append))
    return {"frames_sent": report.frames_sent, "frames": log.frames,
            "link": report.network, "blackouts": links[0].blackouts if links else [],
            "reassembly": report.reassembly}


def condition_figures(call: dict[str, Any], warmup_s: float) -> dict[str, Any]:
    """The figures of one call (see the module docstring)."""
    frames = call["frames"]
    times = [t for t, _ in frames]
    if not times:
        return {"frames_returned": 0, "fps": 0.0}
    start, end = times[0] + warmup_s, times[-1]
    counted = [(t, ms) for t, ms in frames if t >= start]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "frames_sent": call["frames_sent"], "frames_returned": len(frames),
        "fps": round(len(counted) / max(end - start, 1e-9), 2),
        "gaps_over_200ms": sum(g > GAP_S for g in gaps),
        "freezes_over_1s": sum(g > FREEZE_S for g in gaps),
        "longest_gap_s": round(max(gaps, default=0.0), 3),
        **latency_summary([ms for _, ms in counted if ms is not None]),
        "unreadable_frames": sum(ms is None for _, ms in counted),
        "blackouts": [recovery(frames, window) for window in call["blackouts"]],
        "link": call["link"], "reassembly": call["reassembly"]}


def recovery(frames: Sequence[tuple[float, float | None]],
             window: tuple[float, float]) -> dict[str, Any]:
    """From the end of a blackout to the next returned frame, and to the next readable one."""
    begin, end = window
    after = [(t, ms) for t, ms in frames if t >= end]
    readable = [t for t, ms in after if ms is not None]
    return {"length_s": round(end - begin, 2),
            "next_frame_s": round(after[0][0] - end, 3) if after else None,
            "next_readable_frame_s": round(readable[0] - end, 3) if readable else None}


def fps_timeline(frames: Sequence[tuple[float, float | None]], origin: float,
                 bin_s: float = 0.5) -> list[tuple[float, float]]:
    """Returned fps in ``bin_s`` bins, seconds from ``origin`` (the call's first frame)."""
    counts: dict[int, int] = {}
    for t, _ in frames:
        key = int((t - origin) // bin_s)
        counts[key] = counts.get(key, 0) + 1
    last = max(counts, default=-1)
    return [(k * bin_s, counts.get(k, 0) / bin_s) for k in range(last + 1)]


def targets(conditions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The issue's network figures, each with its value, limit and whether it was met."""
    loss2 = conditions.get("loss 2%", {})
    blackout = conditions.get("blackout 3 s", {}).get("blackouts") or [{}]
    back = blackout[0].get("next_frame_s")
    rows = {
        "loss2_fps": (loss2.get("fps"), TARGETS["loss2_fps_min"], ">="),
        "loss2_freezes_over_1s": (loss2.get("freezes_over_1s"),
                                  TARGETS["loss2_freezes_over_1s_max"], "<="),
        "blackout_video_back_s": (back, TARGETS["blackout_recovery_s_max"], "<="),
    }
    return {name: {"value": value, "limit": limit,
                   "met": value is not None and (value >= limit if way == ">=" else value <= limit)}
            for name, (value, limit, way) in rows.items()}


def run_network_bench(config: NetworkBenchConfig | None = None,
                      json_path: Path | None = None) -> dict[str, Any]:
    """Every condition in turn against one server; flat figures, a chart beside ``json_path``."""
    from benchmarks.soak import served

    config = config or NetworkBenchConfig()
    calls: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")  # the server's threads: no fork
    with served() as server, ProcessPoolExecutor(1, mp_context=context) as peers:
        for label, template in CONDITIONS:
            spec = config.spec(template)
            print(f"bench network: {label} ({spec}, {config.link} space), {config.seconds:g} s",
                  flush=True)
            calls[label] = one_call(peers, server.url, spec, config)
        facts = server.facts
    figures = {label: {"conditions": config.spec(t), **condition_figures(calls[label],
                                                                        config.warmup_s)}
               for label, t in CONDITIONS}
    met = targets(figures)
    result = {"benchmark": "network", **facts, "link": config.link,
              "seconds_per_condition": config.seconds,
              "warmup_s": config.warmup_s, "camera": "synthetic person 640x480 at 30 fps",
              "conditions": figures, "targets": met,
              "all_targets_met": all(t["met"] for t in met.values())}
    if json_path is not None:
        result["chart"] = plot_network(calls, json_path.with_suffix(".png")).name
    return result


def one_call(peers: ProcessPoolExecutor, url: str, spec: str,
             config: NetworkBenchConfig) -> dict[str, Any]:
    """One condition's call, its link in the peer (user) or on ``lo`` (kernel)."""
    timeout = config.seconds + 120
    if config.link == "user":
        return peers.submit(peer_call, url, spec, config.seconds).result(timeout=timeout)
    from stages.webrtc.impairment import parse_link
    from stages.webrtc.netem import KernelLink, netem_available

    problem = netem_available()
    if problem is not None:
        raise RuntimeError(f"bench network --mode kernel: {problem}")
    with KernelLink(parse_link(spec)) as link:
        call = peers.submit(peer_call, url, None, config.seconds).result(timeout=timeout)
    return {**call, "blackouts": link.blackouts}


def plot_network(calls: dict[str, dict[str, Any]], path: Path) -> Path:
    """Returned fps over the call, one panel per condition, blackouts shaded by a dip."""
    from benchmarks.chart import Series, line_chart

    panels = []
    for label, call in calls.items():
        frames = call["frames"]
        origin = frames[0][0] if frames else 0.0
        panels.append((label, [Series("returned fps", fps_timeline(frames, origin))],
                       TARGETS["loss2_fps_min"]))
    return line_chart(path, panels, x_label="seconds from the first returned frame", columns=3)
