"""The soak's targets, read from a `SoakRecord`, and its chart.

Each target is ``{"value", "limit", "met", ...}``: ``met`` is ``value <= limit``,
``None`` where the run was too short to tell (or, for the churn targets, the
run mode, which has no churn). The issue's targets:

    rss_growth_after_minute_2_pct   RSS from the first sample at or after 2 min
                                    to the last sample, in % (<= 5).
    threads_back_after_each_churn,  churns after which the count ``settle_s``
    fds_back_after_each_churn       later stayed above its level just before
                                    the churn (0).
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
                                    that collection freed).
"""

from __future__ import annotations

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
        "after_close": record.after_close, "after_trim": record.after_trim,
        "after_close_freed": record.after_freed,
        "lost": record.lost, "faults": record.faults, "errors_logged": record.errors,
        "latency_by_minute": record.minutes, "churn_log": record.churns,
        "samples": record.samples,
    }


def soak_targets(record: SoakRecord) -> dict[str, dict[str, Any]]:
    serve = record.config.mode == "serve"
    return {
        "rss_growth_after_minute_2_pct": rss_growth(record.samples),
        "threads_back_after_each_churn": churn_return(record.churns, "threads", serve),
        "fds_back_after_each_churn": churn_return(record.churns, "fds", serve),
        "latency_p50_last_vs_second_minute": latency_ratio(record.minutes, record.config.seconds),
        "crashes": target(len(record.faults) + record.error_count, 0,
                          faults=len(record.faults), errors_logged=record.error_count),
        "sessions_lost": target(len(record.lost), 0, joined=record.joined, left=record.left),
        "sessions_open_after_all_left": target(record.not_closed if serve else None, 0),
        "rss_after_close_minus_idle_mb": rss_held(record),
    }


def rss_growth(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    base = next((s for s in samples if s["t_s"] >= RSS_FROM_S and s["rss_mb"]), None)
    if base is None or base is samples[-1] or not samples[-1]["rss_mb"]:
        return target(None, RSS_GROWTH_LIMIT_PCT, minute_2_mb=None, end_mb=None)
    end = samples[-1]["rss_mb"]
    return target(round(100 * (end - base["rss_mb"]) / base["rss_mb"], 2), RSS_GROWTH_LIMIT_PCT,
                  minute_2_mb=base["rss_mb"], end_mb=end)


def churn_return(churns: Sequence[dict[str, Any]], key: str, applies: bool) -> dict[str, Any]:
    """Churns whose ``key`` count stayed above its level before the churn."""
    rises = [c["after"][key] - c["before"][key] for c in churns
             if "after" in c and c["after"][key] is not None and c["before"][key] is not None]
    if not applies or not rises:
        return target(None, 0, churns=len(rises), largest_rise=None)
    return target(sum(1 for r in rises if r > 0), 0, churns=len(rises), largest_rise=max(rises),
                  first_before=churns[0]["before"][key], last_after=churns[-1].get("after", {})
                  .get(key))


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


def rss_held(record: SoakRecord) -> dict[str, Any]:
    """RSS after the close over RSS before the first session; beside it the same with
    both trimmed, and that split into heaps (anonymous) and mapped files."""
    idle, after = record.idle.get("rss_mb"), record.after_close.get("rss_mb")
    if idle is None or after is None:
        return target(None, RSS_HELD_LIMIT_MB)
    trimmed = {key: _minus(record.after_trim.get(key), record.idle_trimmed.get(key))
               for key in ("rss_mb", "rss_anon_mb", "rss_file_mb", "python_objects", "modules")}
    return target(round(after - idle, 1), RSS_HELD_LIMIT_MB, idle_mb=idle, after_close_mb=after,
                  allocator_trimmed=record.after_freed.get("malloc_trim"),
                  cycle_objects_freed=record.after_freed.get("cycle_objects"),
                  held_after_trim_mb=trimmed["rss_mb"],
                  held_after_trim_anon_mb=trimmed["rss_anon_mb"],
                  held_after_trim_file_mb=trimmed["rss_file_mb"],
                  python_objects_added=trimmed["python_objects"],
                  modules_added=trimmed["modules"])


# ---- the chart -----------------------------------------------------------------------------
def plot_soak(record: SoakRecord, path: Path) -> Path:
    """RSS, threads, fds, fps, latency and drops over time, as a PNG of 2 x 3 panels."""
    samples = record.samples

    def line(label: str, value: Callable[[dict[str, Any]], float | None]) -> Series:
        points = [(s["t_s"] / 60, v) for s in samples if (v := value(s)) is not None]
        return Series(label, points)

    idle = record.idle.get("rss_mb") or 0.0
    panels = [
        ("RSS over idle (MB)", [line("running", lambda s: _minus(s["rss_mb"], idle)),
                                _at_end(record, "after close", record.after_close, idle),
                                _at_end(record, "after a GC", record.after_trim, idle)],
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


def _at_end(record: SoakRecord, label: str, probe: dict[str, Any], idle: float) -> Series:
    """One point at the last sample's time: ``probe``'s RSS over ``idle``."""
    rss = probe.get("rss_mb")
    if not record.samples or rss is None:
        return Series(label, [])
    return Series(label, [(record.samples[-1]["t_s"] / 60, rss - idle)])


def _minus(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else round(value - base, 1)
