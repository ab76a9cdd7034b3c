#!/usr/bin/env python3
"""Run the fuzz suite under the ``fuzz`` profile and keep its record as JSON.

    .venv/bin/python scripts/fuzz-record.py [--json benchmarks/results/fuzz.json] [--seed N]

Runs ``pytest tests/fuzz`` in this process with ``VICOCAM_FUZZ=1`` (over
10,000 cases in all, each bounded in time by the profile's deadline and the
targets' timeouts), then writes: cases per target and how they ended, the
known failures left to their owners, every test's outcome and time, failures
(crashes, hangs, errors), the total time, the command and the machine.
Exits with pytest's status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = Path("benchmarks/results/fuzz.json")


class Recorder:
    """A pytest plugin that keeps each test's outcome, time and first line of failure."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0})
        entry["seconds"] = round(entry["seconds"] + report.duration, 3)
        if hasattr(report, "wasxfail"):
            entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        elif report.failed:
            entry["outcome"] = "failed" if report.when == "call" else f"error in {report.when}"
            entry["reason"] = str(report.longrepr).strip().splitlines()[-1][:300]
        elif report.skipped and report.when != "teardown":
            entry["outcome"] = "skipped"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the record goes")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (reproducible runs)")
    return parser.parse_args(argv)


def run(seed: int, recorder: Recorder) -> tuple[int, float]:
    """pytest on tests/fuzz with the fuzz profile; its exit status and wall time."""
    os.environ["VICOCAM_FUZZ"] = "1"
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import pytest

    start = time.monotonic()
    status = pytest.main(["tests/fuzz", "-q", "-p", "no:cacheprovider",
                          "--hypothesis-profile", "fuzz", f"--hypothesis-seed={seed}"],
                         plugins=[recorder])
    return int(status), time.monotonic() - start


def targets() -> dict[str, dict[str, Any]]:
    from tests.fuzz import tally

    return {name: {"cases": tally.CASES[name], "outcomes": dict(tally.OUTCOMES[name])}
            for name in sorted(tally.CASES)}


def record(args: argparse.Namespace, recorder: Recorder, status: int,
           seconds: float) -> dict[str, Any]:
    from benchmarks.common import machine_info
    from tests.fuzz import tally

    failed = {k: v for k, v in recorder.tests.items() if v["outcome"] not in
              ("passed", "xfailed", "skipped")}
    by_target = targets()
    return {
        "command": " ".join(["scripts/fuzz-record.py", *sys.argv[1:]]),
        "profile": "fuzz", "hypothesis_seed": args.seed, "exit_status": status,
        "seconds": round(seconds, 1),
        "cases_total": sum(t["cases"] for t in by_target.values()),
        "targets": by_target,
        "failures": failed,
        "hangs": sum("hang" in v.get("reason", "") or "Timeout" in v.get("reason", "")
                     for v in failed.values()),
        "known_failures": dict(tally.KNOWN_FAILURES),
        "tests": recorder.tests,
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    recorder = Recorder()
    status, seconds = run(args.seed, recorder)
    result = record(args, recorder, status, seconds)
    path = args.json if args.json.is_absolute() else ROOT / args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['cases_total']} cases, {len(result['failures'])} failures, "
          f"{result['seconds']} s -> {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
