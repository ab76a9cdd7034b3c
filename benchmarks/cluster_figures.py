"""The figures of ``vicocam bench cluster`` from what its phases recorded (no Ray, no peers).

A phase is ``sessions`` peers that join one after another and then run
together; in the kill phase the replica holding the most of them is killed
at ``mark``, in the other nothing happens at the same moment. Every figure
comes from a `PhaseLog`:

- placement: how many peers each replica took when they joined (from the
  replica that answered each peer's first call).
- offer to first frame: a peer's first call, from its start (the offer is
  made at once) to its first returned frame.
- fps: frames a peer got back from ``joined`` (every peer has video) to
  ``ended`` (the peers begin to hang up), per second.
- the window ``[mark, ended]``: per group of peers (those of the killed, or
  marked, replica and the others) the camera frames captured, the frames
  returned, the difference (``lost``: every frame that did not come back,
  whether a live policy dropped it or not), the longest time without a
  returned frame (the window's edges count as frames), and the
  capture-to-return latency of the frames whose stamp came back
  (``unstamped``: those whose did not; an avatar does not keep the stamp,
  so only replicas without a model give latencies).
- the policy window (`policy_window`): the same counts between the
  replica's last stats before ``mark`` and before ``ended``, with the
  frames the replica's live policy dropped in between (at an edge, or
  replaced at its input); what is left (``lost_beyond_policy``) is what
  the network, the peers' own pipelines or a fault lost.
- reconnect (kill phase): for each peer of the killed replica, from the
  kill to the first frame of its next call with video (``back_s``), from
  its last frame before to that one (``video_gap_s``), from the kill to
  its client calling the session lost (``lost_after_s``) and from then to
  the new call's video (``video_after_loss_s``); and from the kill to
  Ray's replacement replica running.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak_peers import latency_summary
from pipeline.metrics import percentile

FIRST_FRAME_P95_MAX_S = 3.0
RECONNECT_MAX_S = 5.0
LOST_INCREASE_MAX = 0.05
"""How much more of their captured frames the other replica's sessions may lose with the
kill than without, beyond what their replica's live policy dropped: the issue's "no more
frames (± live-policy drops)", with 5 points for what the peers' own pipelines drop
on a loaded machine."""
GROUPS = ("killed", "other")


@dataclass
class PhaseLog:
    """What one phase recorded; times are `time.monotonic` seconds, shared by processes.

    Attributes:
        killed: whether ``victim`` was killed at ``mark``.
        replicas: the replicas alive when the peers joined.
        joined: when every peer had got video back.
        mark: the kill, or without one the same moment after ``joined``.
        ended: when the peers began to hang up.
        victim: the replica killed at ``mark``; without a kill the one that would have been.
        replaced: when Ray had the killed replica's replacement running (``None``: not
            within the phase, or no kill).
        placement: session id -> replica, for every session the gateway answered.
        stats_at_mark, stats_at_end: session id -> ``{"seen": t, "stats": ...}``, its
            replica's last stats then and when the gateway got them.
        peers: one record per peer (`benchmarks.cluster_peers.peer_record`).
    """

    killed: bool
    replicas: list[str] = field(default_factory=list)
    joined: float = 0.0
    mark: float = 0.0
    ended: float = 0.0
    victim: str | None = None
    replaced: float | None = None
    placement: dict[str, str] = field(default_factory=dict)
    stats_at_mark: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats_at_end: dict[str, dict[str, Any]] = field(default_factory=dict)
    peers: list[dict[str, Any]] = field(default_factory=list)


def first_call(peer: dict[str, Any]) -> dict[str, Any]:
    calls = peer["calls"]
    return calls[0] if calls else {}


def home(peer: dict[str, Any], log: PhaseLog) -> str | None:
    """The replica that took the peer's first call (``None``: unknown or refused)."""
    return log.placement.get(str(first_call(peer).get("session")))


def group_of(peer: dict[str, Any], log: PhaseLog) -> str:
    return "killed" if home(peer, log) == log.victim else "other"


def placement_counts(log: PhaseLog) -> dict[str, int]:
    """Peers per replica as they joined; every replica alive then is listed, 0 included."""
    counts = Counter(home(p, log) for p in log.peers)
    named = {r: counts.get(r, 0) for r in log.replicas}
    unknown = sum(n for r, n in counts.items() if r not in named)
    return named | ({"unknown": unknown} if unknown else {})


def first_frame_s(peer: dict[str, Any]) -> float | None:
    """From the start of the peer's first call to its first returned frame."""
    call = first_call(peer)
    if call.get("first_frame") is None:
        return None
    return float(call["first_frame"] - call["started"])


def fps(peer: dict[str, Any], begin: float, end: float) -> float:
    """Returned frames per second within ``[begin, end]``."""
    count = sum(begin <= t <= end for t, _ in peer["frames"])
    return count / max(end - begin, 1e-9)


def longest_gap(times: Sequence[float], begin: float, end: float) -> float:
    """The longest time without a frame within ``[begin, end]``, its edges counted as frames."""
    inside = sorted(t for t in times if begin <= t <= end)
    return max(b - a for a, b in itertools.pairwise([begin, *inside, end]))


def server_drops(stats: dict[str, Any]) -> int:
    """What a session's replica dropped by its live policy: at its edges, and replaced at input."""
    return int(sum(stats.get("drops", {}).values()) + stats.get("frames_replaced", 0))


def window_counts(peers: Sequence[dict[str, Any]], log: PhaseLog) -> dict[str, Any]:
    """The group's captured, returned and lost frames in ``[mark, ended]``, its longest gap and
    latency, and what its replica's live policy dropped (`policy_window`)."""
    begin, end = log.mark, log.ended
    captured = sum(_count(p["reads"], begin, end) for p in peers)
    returned = sum(_count(_times(p), begin, end) for p in peers)
    gaps = [longest_gap(_times(p), begin, end) for p in peers]
    latencies = [ms for p in peers for t, ms in p["frames"] if begin <= t <= end]
    lost = captured - returned
    return {"sessions": len(peers), "captured": captured, "returned": returned, "lost": lost,
            "lost_ratio": _ratio(lost, captured),
            "longest_gap_s": _round(max(gaps, default=math.nan), 3),
            **latency_summary([ms for ms in latencies if ms is not None]),
            "unstamped": sum(ms is None for ms in latencies),
            "policy_window": policy_window(peers, log)}


def policy_window(peers: Sequence[dict[str, Any]], log: PhaseLog) -> dict[str, Any] | None:
    """Frames lost beyond the replica's live policy, between its stats before ``mark`` and
    before ``ended``: each session counted from when the gateway got the one to the other,
    so the peer's counts and the replica's cover the same time (``None``: a session's
    replica gave no stats then, e.g. it was killed)."""
    spans = []
    for peer in peers:
        session = str(first_call(peer).get("session"))
        at_mark, at_end = log.stats_at_mark.get(session), log.stats_at_end.get(session)
        if at_mark is None or at_end is None or not at_mark["stats"]:
            return None
        spans.append((peer, at_mark, at_end))
    captured = sum(_count(p["reads"], m["seen"], e["seen"]) for p, m, e in spans)
    returned = sum(_count(_times(p), m["seen"], e["seen"]) for p, m, e in spans)
    drops = sum(server_drops(e["stats"]) - server_drops(m["stats"]) for _, m, e in spans)
    beyond = captured - returned - drops
    return {"captured": captured, "returned": returned, "replica_drops": drops,
            "lost_beyond_policy": beyond, "lost_beyond_policy_ratio": _ratio(beyond, captured)}


def _times(peer: dict[str, Any]) -> list[float]:
    return [t for t, _ in peer["frames"]]


def _count(times: Sequence[float], begin: float, end: float) -> int:
    return sum(begin <= t <= end for t in times)


def _ratio(part: int, whole: int) -> float | None:
    return _round(part / whole, 4) if whole else None


def reconnect(peer: dict[str, Any], log: PhaseLog) -> dict[str, Any]:
    """How one peer of the killed replica got video again (``back_s`` None: it did not)."""
    calls = peer["calls"]
    lost = next((c for c in calls if c["started"] <= log.mark
                 and (c["ended"] is None or c["ended"] >= log.mark)), None)
    after = [c for c in calls if c["started"] > log.mark]
    back = next((c for c in after if c["first_frame"] is not None), None)
    row: dict[str, Any] = {"tries": len(after), "back_s": None, "video_gap_s": None,
                           "lost_after_s": None, "video_after_loss_s": None, "on": None}
    if lost is not None and lost["ended"] is not None:
        row["lost_after_s"] = _round(lost["ended"] - log.mark, 3)
        row["lost_because"] = lost["reason"]
    if back is None:
        return row
    row["back_s"] = _round(back["first_frame"] - log.mark, 3)
    row["on"] = log.placement.get(str(back["session"]))
    if lost is not None and lost["last_frame"] is not None:
        row["video_gap_s"] = _round(back["first_frame"] - lost["last_frame"], 3)
    if lost is not None and lost["ended"] is not None:
        row["video_after_loss_s"] = _round(back["first_frame"] - lost["ended"], 3)
    return row


def phase_figures(log: PhaseLog) -> dict[str, Any]:
    """One phase's figures (see the module docstring)."""
    groups = {g: [p for p in log.peers if group_of(p, log) == g] for g in GROUPS}
    rates = [fps(p, log.joined, log.ended) for p in log.peers]
    figures: dict[str, Any] = {
        "killed_replica": log.victim if log.killed else None,
        "sessions_per_replica": placement_counts(log),
        "first_frame_s": [_round(first_frame_s(p), 3) for p in log.peers],
        "fps_per_session": [_round(r, 2) for r in rates],
        "fps_min": _round(min(rates, default=math.nan), 2),
        "fps_mean": _round(sum(rates) / len(rates), 2) if rates else None,
        "window_s": _round(log.ended - log.mark, 2),
        "errors": [p["error"] for p in log.peers if p["error"]],
        **{f"{g}_replica_sessions": window_counts(groups[g], log) for g in GROUPS},
        "other_replica_calls_lost": sum(max(len(p["calls"]) - 1, 0) for p in groups["other"]),
    }
    if log.killed:
        rows = [reconnect(p, log) for p in groups["killed"]]
        backs = [r["back_s"] for r in rows]
        figures["replacement_running_after_s"] = (
            None if log.replaced is None else _round(log.replaced - log.mark, 2))
        figures["reconnects"] = rows
        figures["reconnect_p50_s"] = _round(_percentile(backs, 50), 3)
        figures["reconnect_max_s"] = None if None in backs else _round(max(backs, default=0), 3)
    return figures


def cluster_figures(no_kill: PhaseLog, kill: PhaseLog) -> dict[str, Any]:
    """Both phases' figures, the pooled offer-to-first-frame times, and the targets."""
    phases = {"no_kill": phase_figures(no_kill), "kill": phase_figures(kill)}
    firsts = [first_frame_s(p) for log in (no_kill, kill) for p in log.peers]
    pooled = {"first_frame_p50_s": _round(_percentile(firsts, 50), 3),
              "first_frame_p95_s": _round(_percentile(firsts, 95), 3),
              "first_frame_max_s": _round(_percentile(firsts, 100), 3)}
    met = targets(phases, pooled, len(no_kill.peers), len(no_kill.replicas))
    return {**pooled, "phases": phases, "targets": met,
            "all_targets_met": all(t["met"] for t in met.values())}


def targets(phases: dict[str, dict[str, Any]], pooled: dict[str, Any], sessions: int,
            replicas: int) -> dict[str, dict[str, Any]]:
    """The issue's figures, each with its value, its limit and whether it was met."""
    counts: list[dict[str, int]] = [p["sessions_per_replica"] for p in phases.values()]
    spreads = [max(c.values()) - min(c.values()) for c in counts if c]
    kill, calm = phases["kill"], phases["no_kill"]
    now, before = (_beyond_policy(kill), _beyond_policy(calm))
    increase = None if now is None or before is None else _round(now - before, 4)
    rows = {
        "sessions_per_replica_spread": (max(spreads) if len(spreads) == len(counts) else None,
                                        0 if replicas and sessions % replicas == 0 else 1),
        "first_frame_p95_s": (pooled["first_frame_p95_s"], FIRST_FRAME_P95_MAX_S),
        "reconnect_max_s": (kill.get("reconnect_max_s"), RECONNECT_MAX_S),
        "other_replica_lost_beyond_policy_increase": (increase, LOST_INCREASE_MAX),
        "other_replica_calls_lost": (kill["other_replica_calls_lost"], 0),
    }
    return {name: {"value": value, "limit": limit, "met": value is not None and value <= limit}
            for name, (value, limit) in rows.items()}


def _beyond_policy(phase: dict[str, Any]) -> float | None:
    window = phase["other_replica_sessions"]["policy_window"]
    return None if window is None else window["lost_beyond_policy_ratio"]


def fps_timeline(times: Sequence[float], origin: float, end: float,
                 bin_s: float = 0.5) -> list[tuple[float, float]]:
    """Returned fps in ``bin_s`` bins from ``origin`` to ``end``, seconds from ``origin``."""
    bins = max(1, int((end - origin) // bin_s))  # whole bins only
    counts = [0] * bins
    for t in times:
        if origin <= t < origin + bins * bin_s:
            counts[int((t - origin) // bin_s)] += 1
    return [(k * bin_s, n / bin_s) for k, n in enumerate(counts)]


def group_timeline(log: PhaseLog, group: str) -> list[tuple[float, float]]:
    """The mean returned fps per session of ``group`` over the phase, from ``joined``."""
    lines = [fps_timeline([t for t, _ in p["frames"]], log.joined, log.ended)
             for p in log.peers if group_of(p, log) == group]
    if not lines:
        return []
    return [(x, sum(line[k][1] for line in lines) / len(lines))
            for k, (x, _) in enumerate(lines[0])]


def _percentile(values: Sequence[float | None], q: float) -> float:
    """The ``q`` percentile, a missing value counting as infinite (nan: none, or it met one)."""
    return percentile([math.inf if v is None else v for v in values], q)


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None
