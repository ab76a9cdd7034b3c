"""When a model of the synthetic world meets real faces, and what the warning advises."""

from __future__ import annotations

import shlex

from networks.checkpoint import TrainingDomain
from pipeline.app.real_faces import run_notice, serve_notice

WORLD = TrainingDomain.SYNTHETIC_WORLD


def test_the_warning_says_why_and_gives_the_command_to_run_instead():
    line = run_notice(WORLD, ["my portrait.jpg"], "clip.mp4")
    assert line is not None and "\n" not in line
    assert "synthetic world" in line and "distorted" in line
    assert "vox.pt" in line and "github.com/wyhsirius/LIA" in line
    command = shlex.join(["vicocam", "run", "--checkpoint", "models/vox.pt",
                          "--avatar", "my portrait.jpg", "--driver", "clip.mp4"])
    assert line.endswith(f"run: {command}")  # the user's own endpoints, quoted for a shell


def test_any_real_endpoint_warns_and_generated_ones_do_not():
    assert run_notice(WORLD, ["person:1"], "person") is None
    assert run_notice(WORLD, ["person:1", "person:3"], "pattern") is None
    assert run_notice(WORLD, ["person:1"], "camera:0") is not None
    assert run_notice(WORLD, ["person:1"], "talk.mp4") is not None
    line = run_notice(WORLD, ["person:2", "me.png"], "person")
    assert line is not None and line.endswith("--avatar me.png --driver camera:0")


def test_models_of_real_faces_random_and_unknown_weights_are_not_warned_about():
    for domain in (TrainingDomain.REAL_FACES, TrainingDomain.UNKNOWN, None):
        assert run_notice(domain, ["me.jpg"], "camera:0") is None
        assert serve_notice(domain, "me.jpg") is None


def test_serve_always_warns_with_the_synthetic_model():
    line = serve_notice(WORLD, "person:1")
    assert line is not None
    assert line.endswith("vicocam serve --checkpoint models/vox.pt --avatar me.jpg")
    assert str(serve_notice(WORLD, "boss.png")).endswith("--avatar boss.png")
