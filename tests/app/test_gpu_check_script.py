"""``scripts/gpu-check.sh``: its syntax, and a dry run whose commands the CLI accepts.

Nothing is installed or run here: the dry run prints each step with its time
limit, and every printed ``vicocam`` command is parsed by the real parser, so
a renamed flag fails here instead of on a borrowed GPU machine.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
BUDGET_S = 480

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_the_dry_run_plans_every_check_within_the_budget(tmp_path: Path):
    out = tmp_path / "results"
    done = _run("--dry-run", "--with-tensorrt", str(out))
    assert done.returncode == 0, done.stderr
    steps = re.findall(r"^step (\S+) timeout=(\d+): vicocam (.*)$", done.stdout, re.M)
    names = [name for name, _, _ in steps]
    assert names[0] == "doctor-gpu" and "bench-model" in names
    assert {"bench-live-torch", "bench-live-onnxruntime", "bench-live-tensorrt"} <= set(names)
    assert any(name.startswith("bench-sessions-") for name in names)
    assert sum(int(limit) for _, limit, _ in steps) <= BUDGET_S
    assert f"add up to {sum(int(limit) for _, limit, _ in steps)} s" in done.stdout
    assert "pip install onnxruntime-gpu" in done.stdout and "tensorrt-cu" in done.stdout
    assert not out.exists()  # a dry run writes nothing


def test_every_planned_command_is_one_the_cli_accepts(tmp_path: Path):
    out = tmp_path / "results"
    done = _run("--dry-run", str(out))
    commands = re.findall(r"^step \S+ timeout=\d+: vicocam (.*)$", done.stdout, re.M)
    assert len(commands) == 6
    for command in commands:
        argv = shlex.split(command)
        args = build_parser().parse_args(argv)  # SystemExit on an unknown flag
        assert args.json is not None and args.json.parent == out
        if argv[0] != "bench" or argv[1] != "model":
            assert args.device == "cuda:0", command


def test_unknown_options_are_refused_with_a_reason():
    done = _run("--fast")
    assert done.returncode == 1 and "unknown option --fast" in done.stderr
    assert "--dry-run" in _run("--help").stdout
