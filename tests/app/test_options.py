"""Shared options: one spelling each, the old spellings still working with a deprecation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipeline.app.cli import build_parser, main
from pipeline.app.model_options import add_model_options, model_spec
from pipeline.errors import UserError
from trt_engines.backends import BackendName, Precision


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_model_options_build_one_model_spec():
    spec = model_spec(parse("run", "--config", "lia-64s", "--backend", "torch",
                            "--threads", "2", "--cache", "c"))
    assert (spec.checkpoint, spec.config, spec.backend, spec.device, spec.threads,
            spec.resolved_precision, spec.cache_dir, spec.max_batch) == (
        None, "lia-64s", BackendName.TORCH, "cpu", 2, Precision.FP32, Path("c"), 4)


@pytest.mark.parametrize("command", [
    ["run"], ["serve"], ["selfcheck"], ["doctor"], ["engines", "build"],
    ["engines", "export", "--out", "x"],
])
def test_every_command_that_takes_a_model_spells_its_options_alike(command):
    args = parse(*command, "--config", "lia-64s", "--threads", "3")
    spec = model_spec(args, weights_only=command[-1] == "x")
    assert (spec.config, spec.threads) == ("lia-64s", 3)


@pytest.mark.parametrize("old", ["--model-config", "--model"])
def test_old_config_spellings_still_work_and_say_so(old, capsys):
    args = parse("run", old, "lia-64s")
    assert args.config == "lia-64s"
    assert f"{old} is deprecated" in capsys.readouterr().err


def test_train_takes_the_same_config_option(capsys):
    assert parse("train", "--run-dir", "r", "--config", "lia-64s").config == "lia-64s"
    assert parse("train", "--run-dir", "r", "--model", "lia-64s").config == "lia-64s"
    assert "--model is deprecated" in capsys.readouterr().err


def test_old_endpoint_names_become_the_new_ones(capsys):
    args = parse("run", "--driver", "synthetic:2", "--avatar", "synthetic:3")
    assert (args.driver, args.avatar) == ("person:2", ["person:3"])
    assert parse("run", "--source", "synthetic:64x48@5").source == "pattern:64x48@5"
    client = parse("client", "--server", "http://h:1", "--camera", "2",
                   "--virtualcam-device", "/dev/video9")
    assert (client.source, client.sink) == ("camera:2", "virtualcam:/dev/video9")
    err = capsys.readouterr().err
    for old in ("--driver synthetic:2", "--avatar synthetic:3", "--source synthetic",
                "--camera", "--virtualcam-device"):
        assert f"vicocam: {old}" in err and "is deprecated" in err


def test_engines_export_keeps_fp16_as_a_precision():
    assert parse("engines", "export", "--out", "x", "--fp16").precision == Precision.FP16
    assert parse("engines", "build").precision == Precision.FP16


def test_choices_come_from_the_enums(capsys):
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    actions = {a.dest: a for a in parser._actions}
    assert actions["backend"].choices == [b.value for b in BackendName]
    assert actions["precision"].choices == [p.value for p in Precision]
    assert main(["run", "--backend", "cuda"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_model_specs_are_user_errors():
    with pytest.raises(UserError, match="not both"):
        model_spec(parse("run", "--config", "lia-64s", "--checkpoint", "m.pt"))
    with pytest.raises(UserError, match="FP16 runs on TensorRT only"):
        model_spec(parse("run", "--precision", "fp16"))
    spec = model_spec(parse("run", "--precision", "fp16", "--device", "cuda:0"))
    assert spec.resolved_backend is BackendName.TENSORRT


@pytest.mark.parametrize(("argv", "precision"), [
    (["run", "--device", "cuda:0"], Precision.FP16),  # TensorRT on CUDA: FP16 by default
    (["serve", "--device", "cuda:1"], Precision.FP16),
    (["run", "--device", "cuda:0", "--precision", "fp32"], Precision.FP32),  # explicit wins
    (["run", "--device", "cuda:0", "--backend", "onnxruntime"], Precision.FP32),
    (["run", "--device", "cuda:0", "--backend", "torch"], Precision.FP32),
    (["run"], Precision.FP32),  # the CPU default backend
    (["bench", "live", "--device", "cuda:0"], Precision.FP16),
])
def test_fp16_is_the_default_with_tensorrt_on_cuda_only(argv, precision):
    assert model_spec(parse(*argv)).resolved_precision is precision


def test_what_runs_in_fp16_depends_on_the_backend_that_opens():
    from trt_engines.bundle import ModelSpec, effective_precision

    spec = ModelSpec(device="cuda:0")
    assert effective_precision(spec, BackendName.TENSORRT) is Precision.FP16
    assert effective_precision(spec, BackendName.ONNXRUNTIME) is Precision.FP32  # a fallback


def test_the_engines_batch_maximum_comes_from_serve_and_engines_build():
    from pipeline.app.commands.serve import serve_config
    from trt_engines.bundle import engine_batch

    assert model_spec(parse("run")).max_batch == 4
    assert serve_config(parse("serve", "--max-sessions", "6")).model.max_batch == 6
    build = parse("engines", "build", "--max-batch", "3")
    spec = model_spec(build, max_batch=build.max_batch)
    assert (engine_batch(spec).min, engine_batch(spec).opt, engine_batch(spec).max) == (1, 1, 3)
    with pytest.raises(UserError, match="largest batch must be >= 1"):
        model_spec(parse("run"), max_batch=0)
