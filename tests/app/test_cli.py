import json
import subprocess
import sys

from pipeline.app.cli import COMMANDS, main
from stages.io import VideoFileSource, VideoFileSourceConfig
from stages.stamp import read_stamp


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command.replace('_', '-')} " in out


def test_run_renders_the_synthetic_source_offline_into_a_file(tmp_path, capsys):
    out = tmp_path / "out.mp4"
    metrics = tmp_path / "m.json"
    code = main(
        [
            "run",
            "--source",
            "pattern:320x240@30",
            "--frames",
            "45",
            "--mode",
            "offline",
            "--sink",
            str(out),
            "--json",
            str(metrics),
            "--no-status",
        ]
    )
    assert code == 0
    summary = capsys.readouterr().out
    assert "end-to-end" in summary and "45 out" in summary
    assert json.loads(metrics.read_text())["frames_out"] == 45
    source = VideoFileSource(VideoFileSourceConfig(out))
    source.open()
    stamps = []
    while (got := source.read()) is not None:
        stamps.append(read_stamp(got.image))
    source.close()
    assert stamps == list(range(45))


def test_run_reports_a_missing_file_clearly(tmp_path, capsys):
    code = main(["run", "--source", str(tmp_path / "missing.mp4"), "--sink", "null"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not found" in err and "missing.mp4" in err
    assert "Traceback" not in err


def test_run_reports_an_unknown_sink_clearly(capsys):
    code = main(["run", "--sink", "printer", "--frames", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown sink 'printer'" in err and ".mp4" in err


def test_bench_rejects_unknown_names(capsys):
    assert main(["bench", "warp-speed"]) == 2
    assert "unknown benchmark 'warp-speed'" in capsys.readouterr().err


def test_bench_writes_flat_json(tmp_path):
    path = tmp_path / "overhead.json"
    assert main(["bench", "overhead", "--seconds", "0.2", "--gil-switch-ms", "0.5",
                 "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "overhead" and data["gil_switch_ms"] == 0.5
    assert data["stages"] == 8 and data["overhead_ms_per_stage_p50"] > 0
    assert "machine" in data and "command" in data


def test_console_script_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.app", "bench", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "overload" in proc.stdout
