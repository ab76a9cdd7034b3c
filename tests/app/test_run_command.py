"""``vicocam run`` on the avatar path: the no-argument demo and the user-facing errors."""

import json
import shlex

import av
import pytest

from pipeline.app.cli import main


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One ONNX export cache for the module, never the user's home."""
    return tmp_path_factory.mktemp("vicocam-cache")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch, cache_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VICOCAM_CACHE", str(cache_dir))
    return tmp_path


def _video(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        return stream.width, stream.height, len(frames)


def test_run_with_no_arguments_writes_the_side_by_side_demo(in_tmp, capsys):
    from trt_engines.bundle import bundled_checkpoint

    assert main(["run", "--seconds", "0.5"]) == 0
    width, height, count = _video(in_tmp / "out" / "vicocam.mp4")
    assert (width, height) == (1280, 480)  # driver | avatar
    assert count >= 3
    captured = capsys.readouterr()
    assert "end-to-end" in captured.out and "out/vicocam.mp4" in captured.out
    bundled = bundled_checkpoint()
    assert bundled is not None, "the demo model ships under networks/pretrained/"
    assert f"from {bundled.name}" in captured.out
    assert "RANDOM" not in captured.err


def test_without_any_model_the_run_says_its_weights_are_random(in_tmp, tmp_path, monkeypatch,
                                                                capsys):
    import networks

    monkeypatch.setattr(networks, "__file__", str(tmp_path / "nothing" / "__init__.py"))
    assert main(["run", "--seconds", "0.3"]) == 0
    captured = capsys.readouterr()
    assert "random weights" in captured.out  # never pretends to be a trained model
    assert "RANDOM" in captured.err and "--checkpoint" in captured.err


def test_run_drives_a_portrait_from_a_video_file_offline(in_tmp, shared_media, capsys):
    metrics = in_tmp / "m.json"
    code = main(["run", "--avatar", str(shared_media / "monroe.png"),
                 "--driver", str(shared_media / "driving2.mp4"), "--frames", "6",
                 "--mode", "offline", "--backend", "torch", "--output-mode", "paste",
                 "--output-size", "320x240", "--sink", "null", "--json", str(metrics),
                 "--no-status"])
    assert code == 0
    data = json.loads(metrics.read_text())
    assert data["frames_out"] == 6 and data["frames_failed"] == 0
    assert {"face_track", "avatar", "motion", "generate", "composite"} <= set(data["stages"])


QUICK = ["--frames", "2", "--backend", "torch", "--sink", "null", "--no-status", "--no-keys"]


def _warnings(err):
    return [line for line in err.splitlines() if line.startswith("vicocam: warning:")]


def test_a_photograph_with_the_synthetic_model_gets_one_warning_line(in_tmp, shared_media,
                                                                   capsys):
    portrait = str(shared_media / "monroe.png")
    assert main(["run", "--avatar", portrait, *QUICK]) == 0
    (line,) = _warnings(capsys.readouterr().err)
    assert "only vicocam's synthetic world" in line and "real faces come out distorted" in line
    assert "vox.pt" in line and "github.com/wyhsirius/LIA" in line
    assert line.endswith(f"run: vicocam run --checkpoint models/vox.pt --avatar "
                         f"{shlex.quote(portrait)} --driver camera:0")


def test_the_synthetic_person_with_the_synthetic_model_gets_no_warning(in_tmp, capsys):
    assert main(["run", *QUICK]) == 0
    err = capsys.readouterr().err
    assert "vicocam: model vicoface-64s from" in err  # the bundled model ran
    assert _warnings(err) == [] and "vox.pt" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "synthetic", "--avatar", "a.png"], "--driver"),
        (["--checkpoint", "missing.safetensors"], "not found"),
        (["--output-size", "wide"], "WIDTHxHEIGHT"),
        (["--config", "huge"], "unknown configuration 'huge'"),
        (["--model-config", "huge"], "--model-config is deprecated"),
        (["--threads", "0"], "--threads: must be >= 1"),
        (["--driver", "nowhere.mp4", "--sink", "printer"], "unknown sink 'printer'"),
    ],
)
def test_run_reports_user_errors_in_one_line(in_tmp, capsys, args, message):
    assert main(["run", "--frames", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_portrait_without_a_face_fails_at_start_with_advice(in_tmp, capsys):
    import cv2
    import numpy as np

    blank = in_tmp / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    code = main(["run", "--avatar", str(blank), "--frames", "2", "--backend", "torch",
                 "--sink", "null", "--no-status"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no face found" in err and "Traceback" not in err


def test_frames_in_flight_follow_the_cores():
    from pipeline.runtime import default_in_flight

    assert default_in_flight(5, cpus=2) == 3
    assert default_in_flight(5, cpus=16) == 6  # never more than the stages can hold
    assert default_in_flight(1, cpus=1) == 2


def test_a_gpu_device_without_a_gpu_fails_before_the_first_frame(in_tmp, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the run would start")
    assert main(["run", "--device", "cuda:0", "--frames", "1", "--sink", "null"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--device cpu" in err and "Traceback" not in err


def test_the_bundled_model_is_found_by_name(tmp_path, monkeypatch):
    import networks
    from trt_engines.bundle import BUNDLED_NAME, bundled_checkpoint

    monkeypatch.setattr(networks, "__file__", str(tmp_path / "__init__.py"))
    assert bundled_checkpoint() is None
    folder = tmp_path / "pretrained"
    folder.mkdir()
    (folder / "lia-64s.safetensors").write_bytes(b"")
    assert bundled_checkpoint() == folder / "lia-64s.safetensors"
    (folder / "vicoface-128s.safetensors").write_bytes(b"")
    assert bundled_checkpoint() == folder / "vicoface-128s.safetensors"
    (folder / BUNDLED_NAME).write_bytes(b"")
    assert bundled_checkpoint() == folder / BUNDLED_NAME


def _decoded(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_an_offline_render_is_the_same_every_time(in_tmp, shared_media):
    """Offline renders read frames as fast as they can; nothing may depend on that pace."""
    import numpy as np

    renders = []
    for name in ("a.mp4", "b.mp4"):
        assert main(["run", "--avatar", str(shared_media / "monroe.png"),
                     "--driver", str(shared_media / "driving1.mp4"), "--frames", "12",
                     "--mode", "offline", "--sink", name, "--no-status", "--no-keys"]) == 0
        renders.append(_decoded(in_tmp / name))
    assert len(renders[0]) == len(renders[1]) == 12
    assert all(np.array_equal(x, y) for x, y in zip(*renders, strict=True))


def test_a_camera_runs_until_stopped_with_or_without_an_avatar():
    from pipeline.app.avatar_run import run_seconds
    from pipeline.app.endpoint_options import DEFAULT_SECONDS

    assert run_seconds("camera:0", loop=False, seconds=None, frames=None) is None
    assert run_seconds("pattern", loop=False, seconds=None, frames=None) == DEFAULT_SECONDS
    assert run_seconds("camera:0", loop=False, seconds=3.0, frames=None) == 3.0
    assert run_seconds("pattern", loop=False, seconds=None, frames=5) is None  # frames end it
