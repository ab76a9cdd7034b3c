"""Reading release files safely, vicocam's safetensors format and clear failures."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from networks.checkpoint import (
    _GLOBAL_IN_MESSAGE,
    CheckpointError,
    CheckpointMismatchError,
    TrainingDomain,
    UnsafeCheckpointError,
    _unpickler_reason,
    checkpoint_domain,
    checkpoint_format,
    load_discriminator,
    load_generator,
    read_checkpoint,
    read_release_checkpoint,
    save_checkpoint,
)
from networks.config import DiscriminatorConfig, ModelConfig
from networks.discriminator import Discriminator
from networks.generator import Generator
from tests.networks.conftest import random_images, tiny


class CreatesMarker:
    """Unpickling this runs ``open(marker, "w")``: the file must never appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def release_file(path: Path, config: ModelConfig, **extra) -> Path:
    torch.manual_seed(0)
    generator = Generator(config)
    dis = Discriminator(DiscriminatorConfig.for_model(config))
    args = argparse.Namespace(size=config.size, latent_dim_motion=config.motion_dim, lr=0.002)
    content = {"gen": generator.state_dict(), "dis": dis.state_dict(), "args": args}
    content["g_optim"] = {"state": {}, "param_groups": [{"lr": 0.0016, "params": [0, 1]}]}
    torch.save(content | extra, path)
    return path


def outputs(generator: Generator, seed: int = 0) -> torch.Tensor:
    size = generator.config.size
    with torch.no_grad():
        return generator(random_images(1, size, seed), random_images(1, size, seed + 1))


def test_release_file_with_args_namespace_loads(tmp_path, tiny_config):
    path = release_file(tmp_path / "vox.pt", tiny_config)
    release = read_release_checkpoint(path)
    assert release.args["latent_dim_motion"] == tiny_config.motion_dim
    assert release.args["lr"] == 0.002
    assert set(release.extras) == {"g_optim"}
    assert release.config.family == tiny_config.family
    assert release.discriminator is not None
    torch.manual_seed(0)
    reference = Generator(tiny_config).eval()
    loaded = load_generator(path)
    assert loaded.config.family == tiny_config.family and loaded.config.size == 32
    torch.testing.assert_close(outputs(loaded), outputs(reference))
    assert isinstance(load_discriminator(path), Discriminator)


def test_foreign_pickled_global_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = release_file(tmp_path / "evil.pt", tiny("lia"), payload=CreatesMarker(marker))
    with pytest.raises(UnsafeCheckpointError, match="open") as info:
        load_generator(path)
    assert "open" in info.value.global_name
    assert "would execute code" in str(info.value)
    assert not marker.exists()


class RunsShell:
    """Unpickling this calls ``os.system`` (torch 2.6+ says "Trying to load unsupported
    GLOBAL posix.system whose module posix is blocked"); the command writes a marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_blocked_module_global_is_named_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = release_file(tmp_path / "evil.pt", tiny("lia"), payload=RunsShell(marker))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_generator(path)
    assert info.value.global_name == f"{os.system.__module__}.system"  # posix.system here
    assert info.value.global_name in str(info.value)
    assert "weights_only" not in str(info.value)  # never torch's advice to unpickle anyway
    assert not marker.exists()


@pytest.mark.parametrize("wording", [
    "Unsupported global: GLOBAL posix.system was not an allowed global by default.",
    "Trying to load unsupported GLOBAL posix.system whose module posix is blocked.",
])
def test_both_torch_wordings_of_a_refused_global_are_understood(wording):
    match = _GLOBAL_IN_MESSAGE.search(f"Weights only load failed. ...\n\n{wording}\n")
    assert match is not None and match.group(1) == "posix.system"


def test_a_refusal_without_a_global_keeps_torch_reason_but_not_its_advice():
    exc = RuntimeError(
        "Weights only load failed. In PyTorch 2.6, we changed the default value of the "
        "`weights_only` argument in `torch.load` from `False` to `True`. Re-running `torch.load` "
        "with `weights_only` set to `False` will likely succeed, but it can result in arbitrary "
        "code execution.\n\nWeightsUnpickler error: Unsupported operand 149\n\nCheck the "
        "documentation of torch.load to learn more.")
    assert _unpickler_reason(exc) == "Unsupported operand 149"


def test_foreign_global_in_the_legacy_pickle_format_is_refused(tmp_path):
    marker = tmp_path / "marker"
    content = {"gen": Generator(tiny("lia")).state_dict(), "x": CreatesMarker(marker)}
    path = tmp_path / "legacy.pt"
    torch.save(content, path, _use_new_zipfile_serialization=False)
    assert checkpoint_format(path) == "torch"
    with pytest.raises(UnsafeCheckpointError):
        read_release_checkpoint(path)
    assert not marker.exists()


def test_bare_state_dict_with_ddp_prefix_loads(tmp_path):
    config = tiny("vicoface")
    state = Generator(config).state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "bare.pt")
    loaded = load_generator(tmp_path / "bare.pt")
    assert loaded.config.id_dim == config.id_dim
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_truncated_release_file_is_reported_as_corrupt(tmp_path):
    path = release_file(tmp_path / "vox.pt", tiny("lia"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_generator(path)


def test_unknown_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="neither a torch checkpoint nor a safetensors"):
        load_generator(path)


def test_missing_file_gives_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot open"):
        load_generator(tmp_path / "absent.pt")


def test_checkpoint_for_another_config_names_the_mismatching_tensors(tmp_path):
    path = release_file(tmp_path / "vicoface.pt", tiny("vicoface"))
    with pytest.raises(CheckpointMismatchError) as info:
        load_generator(path, config=tiny("lia"))
    mismatched = {key for key, _, _ in info.value.mismatched}
    assert mismatched == {"enc.fc.4.weight", "enc.fc.4.bias", "dec.direction.weight"}
    message = str(info.value)
    assert "enc.fc.4.weight (checkpoint [30, 64], model [20, 64])" in message
    assert "looks like 'vicoface-32-custom'" in message


def test_missing_and_unexpected_tensors_are_listed(tmp_path):
    config = tiny("lia")
    state = Generator(config).state_dict()
    del state["dec.to_rgb1.bias"]
    state["dec.extra.weight"] = torch.zeros(1)
    torch.save({"gen": state}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointMismatchError) as info:
        load_generator(tmp_path / "odd.pt", config=config)
    assert info.value.missing == ["dec.to_rgb1.bias"]
    assert info.value.unexpected == ["dec.extra.weight"]
    assert "1 missing: dec.to_rgb1.bias" in str(info.value)


def test_state_dict_of_something_else_is_rejected(tmp_path):
    torch.save({"gen": {"weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a LIA/ViCoFace generator"):
        load_generator(tmp_path / "other.pt")


def test_safetensors_round_trip_keeps_config_tensors_and_metadata(tmp_path, tiny_config):
    torch.manual_seed(3)
    generator = Generator(tiny_config).eval()
    dis = Discriminator(DiscriminatorConfig.for_model(tiny_config))
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, generator, dis, metadata={"iteration": "1200"})
    assert checkpoint_format(path) == "safetensors"
    saved = read_checkpoint(path)
    assert saved.config == tiny_config
    assert saved.discriminator_config == dis.config
    assert saved.metadata == {"iteration": "1200"}
    loaded = load_generator(path)
    assert loaded.config == tiny_config
    torch.testing.assert_close(outputs(loaded), outputs(generator), rtol=0, atol=0)
    reloaded_dis = load_discriminator(path)
    assert all(torch.equal(reloaded_dis.state_dict()[k], v) for k, v in dis.state_dict().items())


def test_truncated_safetensors_file_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, Generator(tiny("lia")))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_generator(path)


def test_safetensors_without_discriminator_says_so(tmp_path):
    path = tmp_path / "gen.safetensors"
    save_checkpoint(path, Generator(tiny("lia")))
    with pytest.raises(CheckpointError, match="holds no discriminator"):
        load_discriminator(path)


# ---- training domain ---------------------------------------------------------------


@pytest.mark.parametrize("domain", list(TrainingDomain))
def test_the_training_domain_round_trips_through_a_vicocam_checkpoint(tmp_path, domain):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, Generator(tiny("lia")), metadata={"step": "7"}, domain=domain)
    saved = read_checkpoint(path)
    assert saved.domain is domain and saved.metadata == {"step": "7"}
    assert checkpoint_domain(path) is domain


def test_a_vicocam_checkpoint_that_does_not_say_reads_as_unknown(tmp_path):
    import safetensors.torch

    path = tmp_path / "model.safetensors"
    save_checkpoint(path, Generator(tiny("lia")))  # no domain given
    assert read_checkpoint(path).domain is TrainingDomain.UNKNOWN
    meta, tensors = read_checkpoint_raw(path)
    for value in (None, "moon-faces"):  # older files, and a newer vicocam's value
        changed = {k: v for k, v in meta.items() if k != "training_domain"}
        if value is not None:
            changed["training_domain"] = value
        safetensors.torch.save_file(tensors, str(path), metadata=changed)
        assert checkpoint_domain(path) is TrainingDomain.UNKNOWN


def read_checkpoint_raw(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata()), {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118


def test_release_files_read_as_real_faces(tmp_path):
    path = release_file(tmp_path / "vox.pt", tiny("lia"))
    assert read_release_checkpoint(path).domain is TrainingDomain.REAL_FACES
    assert checkpoint_domain(path) is TrainingDomain.REAL_FACES
    torch.save(Generator(tiny("vicoface")).state_dict(), tmp_path / "660000.pt")  # bare state dict
    assert checkpoint_domain(tmp_path / "660000.pt") is TrainingDomain.REAL_FACES


def test_the_bundled_model_says_it_knows_the_synthetic_world():
    from trt_engines.bundle import BUNDLED_NAME, bundled_checkpoint

    path = bundled_checkpoint()
    assert path is not None and path.name == BUNDLED_NAME
    saved = read_checkpoint(path)
    assert saved.domain is TrainingDomain.SYNTHETIC_WORLD
    assert set(saved.metadata) == {"recipe", "steps"}  # its other entries were kept
    assert saved.config.name == "vicoface-64s" and saved.discriminator is None


# ---- what fuzzing found (tests/fuzz/test_fuzz_checkpoints.py) -------------------------------
def _tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return Generator(tiny("vicoface")).state_dict()


def test_nan_or_infinite_weights_are_refused(tmp_path):
    for bad in (float("nan"), float("inf")):
        state = _tiny_state()
        state["enc.fc.0.weight"].view(-1)[3] = bad
        torch.save(state, tmp_path / "model.pt")
        with pytest.raises(CheckpointError, match=r"NaN or infinite weights in 1 tensors: enc\.fc"):
            load_generator(tmp_path / "model.pt")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_tensors_that_are_not_floating_point_are_refused(tmp_path, dtype):
    state = {k: v.to(dtype) for k, v in _tiny_state().items()}
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="not floating point"):
        load_generator(tmp_path / "model.pt")


def test_half_precision_weights_still_load(tmp_path):
    torch.save({k: v.half() for k, v in _tiny_state().items()}, tmp_path / "model.pt")
    assert load_generator(tmp_path / "model.pt").config.size == 32


def test_a_scalar_or_unnamed_tensor_is_a_checkpoint_error(tmp_path):
    state = _tiny_state()
    state["enc.net_app.convs.0.0.weight"] = torch.tensor(1.0)
    torch.save(state, tmp_path / "scalar.pt")
    with pytest.raises(CheckpointError, match="is a scalar"):
        load_generator(tmp_path / "scalar.pt")
    torch.save({"gen": {0: torch.zeros(1)}}, tmp_path / "unnamed.pt")
    with pytest.raises(CheckpointError, match="dict of tensors by name"):
        load_generator(tmp_path / "unnamed.pt")


def _with_config(tmp_path: Path, config_json: str) -> Path:
    from safetensors.torch import load_file, save_file

    source = tmp_path / "model.safetensors"
    save_checkpoint(source, Generator(tiny("vicoface")))
    meta = {"format": "vicocam-checkpoint", "format_version": "1", "model_config": config_json}
    save_file(load_file(source), str(source), metadata=meta)
    return source


def test_metadata_naming_a_huge_network_is_refused_before_it_is_built(tmp_path):
    config = tiny("vicoface")
    huge = config.to_json().replace('"channels": [32, 32, 16, 8]',
                                    '"channels": [32000, 32000, 16000, 8000]')
    assert huge != config.to_json()
    with pytest.raises(CheckpointError, match="its tensors make"):
        load_generator(_with_config(tmp_path, huge))


@pytest.mark.parametrize("text", ["[]", "5", '{"size": "32"}', "{}"])
def test_metadata_that_is_not_a_config_object_is_refused(tmp_path, text):
    with pytest.raises(CheckpointError, match="invalid configuration metadata"):
        load_generator(_with_config(tmp_path, text))


def test_a_mistyped_config_field_is_refused(tmp_path):
    mistyped = tiny("vicoface").to_json().replace('"blur_kernel": [1, 3, 3, 1]', '"blur_kernel": 2')
    with pytest.raises(CheckpointError, match="wrong type: blur_kernel=2"):
        load_generator(_with_config(tmp_path, mistyped))
