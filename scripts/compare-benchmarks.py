#!/usr/bin/env python3
"""Run benchmarks on two checkouts in turn (A, B, A, B ...) and summarise each figure.

For a change that must not move the figures: the two trees are measured
interleaved in one session on the same machine, so load drifts hit both.

    python3 scripts/compare-benchmarks.py --before ../old --after . --runs 3 \\
        --out benchmarks/results/app-layer overhead overload live webrtc

Options after ``--`` go to every benchmark command as they are (for example
``-- --no-pin``); the benchmarks must accept them in both trees.
``--before-option`` adds one to the *before* runs only, so one tree can be
compared with itself under an option (``--before . --after .
--before-option=--encode-in=aiortc``).

Each run's JSON (with its command, machine and load) goes to
OUT/{before,after}-NAME-K.json; OUT/summary.json holds, per benchmark and
figure, the median, the spread (min..max) and the runs of each tree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

FIGURES = {
    "overhead": ["overhead_ms_per_stage_p50", "runtime_ms_per_frame_p50"],
    "overload": ["output_fps", "latency_p50_ms", "latency_p99_ms_last", "frames_dropped"],
    "pipelining": ["speedup_vs_sequential"],
    "lossless": ["frames_out", "order_preserved", "render_fps"],
    "live": ["output_fps", "latency_p50_ms", "latency_p95_ms", "bare_loop_fps"],
    "webrtc": ["fps", "latency_p50_ms", "latency_p95_ms", "server_latency_p50_ms",
               "server_stage_p50_sum_ms", "server_latency_vs_stages", "stalls_per_min",
               "server_stalls_out_100ms", "server_stalls_encoded_100ms", "cpu_steal_share"],
    "webrtc-model": ["fps", "latency_p50_ms", "latency_p95_ms", "server_latency_p50_ms",
                     "server_stage_p50_sum_ms", "server_latency_vs_stages", "stalls_per_min",
                     "server_stalls_out_100ms", "server_stalls_encoded_100ms",
                     "latency_growth", "cpu_steal_share"],
    "sessions": ["max_sessions_batched", "max_sessions_unbatched", "sessions_ratio",
                 "one_session_p50_batched_minus_unbatched_ms",
                 *(f"first_miss_{mode}.{figure}" for mode in ("batched", "unbatched")
                   for figure in ("fps_min", "fps_mean", "latency_p95_ms"))],
    "contention": [f"burners_{n}.{figure}" for n in (2, 6) for figure in (
        "adaptive_fps_vs_fixed", "adaptive.latency_p50_vs_stages", "fixed.latency_p50_vs_stages",
        "adaptive.latency_p50_vs_service", "fixed.latency_p50_vs_service",
        "adaptive.latency_p50_counted_vs_stages", "fixed.latency_p50_counted_vs_stages",
        "adaptive.stages_p50_sum_ms", "fixed.stages_p50_sum_ms",
        "adaptive.output_fps", "fixed.output_fps", "adaptive.latency_p50_ms",
        "fixed.latency_p50_ms", "adaptive.in_flight_mean", "fixed.in_flight_mean",
        *(f"adaptive.in_flight_limit_share.{level}" for level in (1, 2, 3)))],
}
"""Figures summarised per benchmark; a dotted name reaches into nested objects."""


def run_one(tree: Path, name: str, seconds: float | None, out: Path,
            extra: list[str]) -> dict:
    entry = "pipeline.app" if (tree / "pipeline" / "app" / "cli.py").is_file() else "pipeline.cli"
    # Written beside the tree's root under its own name, then moved: the recorded
    # command names neither a machine path nor the other checkout.
    written = tree / out.name
    if written.exists():
        sys.exit(f"{written} is in the way: move it and run again")
    command = [sys.executable, "-m", entry, "bench", name, "--json", out.name]
    if seconds is not None:
        command += ["--seconds", str(seconds)]
    command += extra
    try:
        subprocess.run(command, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    finally:
        for done in (written, written.with_suffix(".png")):
            if done.exists():
                shutil.move(done, out.with_name(done.name))
    return json.loads(out.read_text())


def figure(run: dict, name: str) -> object:
    """``run``'s figure ``name`` (``a.b`` is ``run["a"]["b"]``); ``None`` if absent."""
    value: object = run
    for key in name.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def summary(values: list) -> dict:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values):
        return {"runs": values}
    return {"median": statistics.median(numbers), "min": min(numbers), "max": max(numbers),
            "runs": numbers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--before-option", action="append", default=[], metavar="OPTION",
                        help="an option for the before runs only (repeatable)")
    parser.add_argument("names", nargs="+", choices=sorted(FIGURES))
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:cut]), argv[cut + 1:]
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    for name in args.names:
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for k in range(args.runs):
            for side, tree in (("before", args.before), ("after", args.after)):
                path = args.out / f"{side}-{name}-{k + 1}.json"
                options = extra + (args.before_option if side == "before" else [])
                runs[side].append(run_one(tree, name, args.seconds, path, options))
                print(f"{name} {side} {k + 1}: " + ", ".join(
                    f"{f}={figure(runs[side][-1], f)}" for f in FIGURES[name]), flush=True)
        result[name] = {side: {f: summary([figure(r, f) for r in rs]) for f in FIGURES[name]}
                        for side, rs in runs.items()}
    (args.out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
