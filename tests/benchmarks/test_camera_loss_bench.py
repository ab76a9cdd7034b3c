"""``vicocam bench camera-loss``: the command measures a loss and writes its figures.

The harness itself is exercised, with its assertions on what was sent, by
``tests/stages/test_virtualcam_keepalive.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyvirtualcam")


def test_the_bench_command_measures_a_one_second_loss(tmp_path: Path):
    out = tmp_path / "camera-loss.json"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.app", "bench", "camera-loss", "--seconds", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["benchmark"] == "camera-loss" and "machine" in figures
    assert "bench camera-loss --seconds 1" in figures["command"]
    assert (figures["loss_s"], figures["nominal_fps"]) == (1.0, 30.0)
    assert figures["fps_before_loss"] > 0 and figures["fps_during_loss"] > 0
    assert figures["frames_sent"] > figures["repeats"] > 0 and figures["frames_unrecognised"] == 0
    assert 0 < figures["new_camera_frame_after_replug_s"] < 2.0
    assert isinstance(figures["rate_within_5pct_through_loss"], bool)
    assert isinstance(figures["new_camera_output_within_1s"], bool)
    # a 1 s loss may end just before or just after the card's 1 s of silence
    assert figures["card_appeared_after_loss_s"] is None or figures["cards"] > 0
