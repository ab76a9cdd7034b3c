"""The soak's targets, read from a `SoakRecord`, and its chart.

Each target is ``{"value", "limit", "met", ...}``: ``met`` is ``value <= limit``,
``None`` where the run was too short to tell (or, for the churn targets, the
run mode, which has no churn). The issue's targets:

    rss_growth_after_minute_2_pct   RSS level (median) of the minute from 2 min
                                    on, to that of the last minute, in % (<= 5).
    threads_back_after_each_churn,  churns after which the count did not come
    fds_back_after_each_churn       back to its level before the churn within
                                    ``settle_s`` of the churn's start (0): it
                                    is read every ``poll_s`` until it is at or
                                    below that level (`benchmarks.soak.ChurnWatch`),
                                    so a thread or socket of one instant does
                                    not count and one the churn left does. fds
                                    leave out TCP connections a client still
                                    holds open (its HTTP keep-alive).
    latency_p50_last_vs_second_minute
                                    latency p50 of the last full minute over
                                    that of the second minute (<= 1.1).
    crashes                         failed looks at the server, a failed run,
                                    records logged at ERROR or above (0).
    sessions_lost                   sessions that ended without their peer
                                    leaving (0).
    sessions_open_after_all_left    sessions the server still held 30 s after
                                    every peer left (0; serve only).
    rss_after_close_minus_idle_mb   RSS once the last session closed, minus RSS
                                    before the first one (<= 50); beside it
                                    the same with both after a full collection
                                    and ``malloc_trim``: what is left once the
                                    garbage of reference cycles is freed and
                                    the allocator gave its free pages back
                                    (``after_close_freed`` names the classes
                                    that collection freed). Also met when the
                                    held memory is explained and bounded
                                    (`rss_held`): after that trim, within 50 MB
                                    of the warm baseline (RSS, trimmed, once
                                    the warm-up's sessions closed), the rest
                                    being what the first sessions load once and
                                    the allocator's free pages.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.chart import Series, line_chart

if TYPE_CHECKING:
    from benchmarks.soak import SoakRecord

RSS_GROWTH_LIMIT_PCT = 5.0
RSS_FROM_S = 120.0
LATENCY_RATIO_LIMIT = 1.1
RSS_HELD_LIMIT_MB = 50.0


def target(value: float | None, limit: float, **beside: Any) -> dict[str, Any]:
    """One target: its number, its limit and whether it was met (``None``: unknown)."""
    return {"value": value, "limit": limit, "met": None if value is None else value <= limit,
            **beside}


def soak_figures(record: SoakRecord) -> dict[str, Any]:
    """The JSON of a soak: setup, targets, totals and every sample."""
    targets = soak_targets(record)
    verdicts = [t["met"] for t in targets.values() if t["met"] is not None]
    return {
        "mode": record.config.mode, "seconds": record.config.seconds,
        "sample_s": record.config.sample_s, **record.facts,
        "targets": targets, "all_targets_met": all(verdicts) if verdicts else None,
        "peers_joined": record.joined, "peers_left": record.left, "churns": len(record.churns),
        "drops_total": sum(s["drops"] for s in record.samples),
        "frames_failed_total": sum(s["frames_failed"] for s in record.samples),
        "idle": record.idle, "idle_trimmed": record.idle_trimmed, "idle_freed": record.idle_freed,
        "warmup": record.warmup, "idle_warm": record.idle_warm,
        "idle_warm_trimmed": record.idle_warm_trimmed, "idle_warm_freed": record.idle_warm_freed,
        "after_close": record.after_close, "after_trim": record.after_trim,
        "after_close_freed": record.after_freed,
        "lost": record.lost, "faults": record.faults, "errors_logged": record.errors,
        "latency_by_minute": record.minutes, "churn_log": record.churns,
        "samples": record.samples,
    }


def soak_targets(record: SoakRecord) -> dict[str, dict[str, Any]]:
    serve = record.config.mode == "serve"
    bound_s = record.config.settle_s
    return {
        "rss_growth_after_minute_2_pct": rss_growth(record.samples),
        "threads_back_after_each_churn": churn_return(record.churns, "threads", "threads",
                                                      bound_s, serve),
        "fds_back_after_each_churn": churn_return(record.churns, "fds", "fds_held", bound_s,
                                                  serve),
        "latency_p50_last_vs_second_minute": latency_ratio(record.minutes, record.config.seconds),
        "crashes": target(len(record.faults) + record.error_count, 0,
                          faults=len(record.faults), errors_logged=record.error_count),
        "sessions_lost": target(len(record.lost), 0, joined=record.joined, left=record.left),
        "sessions_open_after_all_left": target(record.not_closed if serve else None, 0),
        "rss_after_close_minus_idle_mb": rss_held(record),
    }


def rss_growth(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """RSS level of the minute from 2 min on to that of the last minute, in %.

    A level is the median of the minute's samples: RSS swings by tens of MB
    with the frames the sessions hold at the instant, so one sample against
    one would measure the swing. Also the first and last sample of the span.
    """
    read = [s for s in samples if s["rss_mb"]]
    base = [s["rss_mb"] for s in read if RSS_FROM_S <= s["t_s"] < RSS_FROM_S + 60]
    last_from = max(read[-1]["t_s"] - 60, RSS_FROM_S + 60) if read else 0.0
    end = [s["rss_mb"] for s in read if s["t_s"] >= last_from]
    if not base or not end:
        return target(None, RSS_GROWTH_LIMIT_PCT, minute_2_mb=None, end_mb=None)
    level, last = statistics.median(base), statistics.median(end)
    return target(round(100 * (last - level) / level, 2), RSS_GROWTH_LIMIT_PCT,
                  minute_2_mb=level, end_mb=last, minute_2_first_sample_mb=base[0],
                  last_sample_mb=end[-1])


def churn_return(churns: Sequence[dict[str, Any]], key: str, level: str, bound_s: float,
                 applies: bool) -> dict[str, Any]:
    """Churns whose ``key`` count did not come back to its level before the churn
    (the ``level`` reading) within ``bound_s`` (`benchmarks.soak.ChurnWatch`).

    Beside it: the slowest return; ``largest_rise``, the largest rise still
    there at the reading after the bound; the largest rise before the count
    came back, with what was added then (``largest_peak_added``); the churns
    not back (their ``t_s``); and the level before the first churn and after
    the last.
    """
    watched = [c for c in churns if "after" in c and c["before"].get(level) is not None
               and c["after"].get(level) is not None]
    if not applies or not watched:
        return target(None, 0, churns=len(watched), returned_within_s=bound_s,
                      largest_rise=None)
    back = [c.get(f"{key}_back_s") for c in watched]
    returned = [b for b in back if b is not None]
    peak = max((c.get("peak", {}).get(key, {}) for c in watched),
               key=lambda p: p.get("rise", 0))
    return target(len(back) - len(returned), 0, churns=len(watched), returned_within_s=bound_s,
                  slowest_return_s=max(returned, default=None),
                  largest_rise=max(c["after"][level] - c["before"][level] for c in watched),
                  largest_peak_rise=peak.get("rise", 0), largest_peak_added=peak.get("added"),
                  not_back_at_s=[c["t_s"] for c, b in zip(watched, back, strict=True) if b is None],
                  first_before=watched[0]["before"][level], last_after=watched[-1]["after"][level])


def latency_ratio(minutes: Sequence[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The last full minute's p50 over the second minute's (needs 3 full minutes)."""
    p50 = {m["minute"]: m["latency_p50_ms"] for m in minutes}
    last = int(seconds // 60) - 1
    second, final = p50.get(1), p50.get(last)
    if last < 2 or not second or final is None:
        return target(None, LATENCY_RATIO_LIMIT, second_minute_p50_ms=second,
                      last_minute_p50_ms=final)
    return target(round(final / second, 3), LATENCY_RATIO_LIMIT, second_minute_p50_ms=second,
                  last_minute_p50_ms=final, last_minute=last)


PROBE_KEYS = ("rss_mb", "rss_anon_mb", "rss_file_mb", "python_objects", "modules")


def rss_held(record: SoakRecord) -> dict[str, Any]:
    """RSS after the close over RSS before the first session (the issue's figure);
    beside it the same with both trimmed, split into heaps (anonymous) and mapped
    files, and the share of it the warm-up's sessions had already left
    (``one_time_loads_mb``).

    ``met`` when within the limit, or else when the memory held is explained and
    bounded (``met_by: "warm"``): after a trim, within the limit of the warm
    baseline (`warm_held`); what lies between is named in ``explained``.
    """
    idle, after = record.idle.get("rss_mb"), record.after_close.get("rss_mb")
    if idle is None or after is None:
        return target(None, RSS_HELD_LIMIT_MB)
    trimmed = _deltas(record.after_trim, record.idle_trimmed)
    held = target(round(after - idle, 1), RSS_HELD_LIMIT_MB, idle_mb=idle, after_close_mb=after,
                  allocator_trimmed=record.after_freed.get("malloc_trim"),
                  cycle_objects_freed=record.after_freed.get("cycle_objects"),
                  held_after_trim_mb=trimmed["rss_mb"],
                  held_after_trim_anon_mb=trimmed["rss_anon_mb"],
                  held_after_trim_file_mb=trimmed["rss_file_mb"],
                  python_objects_added=trimmed["python_objects"],
                  modules_added=trimmed["modules"],
                  one_time_loads_mb=_minus(record.idle_warm_trimmed.get("rss_mb"),
                                           record.idle_trimmed.get("rss_mb")),
                  warm=warm_held(record))
    return _explained(held)


def warm_held(record: SoakRecord) -> dict[str, Any] | None:
    """RSS after the close against the warm baseline (``None``: no warm-up): as read,
    and with both trimmed (``value``; its heaps and mapped files, Python's objects
    and modules), and the allocator's free pages at each (read minus trimmed)."""
    warm, warm_trimmed = record.idle_warm.get("rss_mb"), record.idle_warm_trimmed.get("rss_mb")
    after, after_trim = record.after_close.get("rss_mb"), record.after_trim.get("rss_mb")
    if None in (warm, warm_trimmed, after, after_trim):
        return None
    trimmed = _deltas(record.after_trim, record.idle_warm_trimmed)
    return {"value": trimmed["rss_mb"], "limit": RSS_HELD_LIMIT_MB,
            "met": trimmed["rss_mb"] is not None and trimmed["rss_mb"] <= RSS_HELD_LIMIT_MB,
            "idle_warm_mb": warm, "idle_warm_trimmed_mb": warm_trimmed,
            "after_close_minus_warm_mb": _minus(after, warm),
            "after_trim_minus_warm_trimmed_mb": trimmed["rss_mb"],
            "anon_mb": trimmed["rss_anon_mb"], "file_mb": trimmed["rss_file_mb"],
            "python_objects_added": trimmed["python_objects"], "modules_added": trimmed["modules"],
            "allocator_free_at_warm_mb": _minus(warm, warm_trimmed),
            "allocator_free_after_close_mb": _minus(after, after_trim),
            "warmup": record.warmup}


def _explained(held: dict[str, Any]) -> dict[str, Any]:
    """``held`` with ``met_by`` (``"idle"``, ``"warm"`` or ``None``) and, when met by
    the warm baseline, what explains the rest."""
    warm = held["warm"]
    if held["met"]:
        return {**held, "met_by": "idle"}
    if not (warm and warm["met"]):
        return {**held, "met_by": None}
    explained = (f"one-time loads of the first sessions ({held['one_time_loads_mb']} MB after "
                 f"a trim, left by the warm-up) and the allocator's free pages "
                 f"({warm['allocator_free_after_close_mb']} MB, given back by malloc_trim); "
                 f"beyond those {warm['value']} MB is held")
    return {**held, "met": True, "met_by": "warm", "explained": explained}


def _deltas(probe: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    return {key: _minus(probe.get(key), base.get(key)) for key in PROBE_KEYS}


# ---- the chart -----------------------------------------------------------------------------
def plot_soak(record: SoakRecord, path: Path) -> Path:
    """RSS, threads, fds, fps, latency and drops over time, as a PNG of 2 x 3 panels."""
    samples = record.samples

    def line(label: str, value: Callable[[dict[str, Any]], float | None]) -> Series:
        points = [(s["t_s"] / 60, v) for s in samples if (v := value(s)) is not None]
        return Series(label, points)

    idle = record.idle.get("rss_mb") or 0.0
    end = samples[-1]["t_s"] / 60 if samples else None
    panels = [
        ("RSS over idle (MB)", [line("running", lambda s: _minus(s["rss_mb"], idle)),
                                _point("after warm-up", record.idle_warm, 0.0, idle),
                                _point("after close", record.after_close, end, idle),
                                _point("after a GC", record.after_trim, end, idle)],
         RSS_HELD_LIMIT_MB),
        ("threads", [line("all", lambda s: s["threads"]),
                     line("Python's", lambda s: s["python_threads"])], None),
        ("open file descriptors", [line("fds", lambda s: s["fds"])], None),
        ("fps per session", [line("min", lambda s: s["fps_min"]),
                             line("mean", lambda s: s["fps_mean"])], None),
        ("latency (ms)", [line("p50", lambda s: s["latency_p50_ms"]),
                          line("p95", lambda s: s["latency_p95_ms"])], None),
        ("per sample", [line("drops", lambda s: s["drops"]),
                        line("failed", lambda s: s["frames_failed"])], None),
    ]
    return line_chart(path, panels, x_label="minutes", columns=3)


def _point(label: str, probe: dict[str, Any], minute: float | None, idle: float) -> Series:
    """One point at ``minute``: ``probe``'s RSS over ``idle`` (none without either)."""
    rss = probe.get("rss_mb")
    if minute is None or rss is None:
        return Series(label, [])
    return Series(label, [(minute, rss - idle)])


def _minus(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else round(value - base, 1)
