"""Fuzzing checkpoints through the loader the commands use (`load_reenactor`): a model of
finite float weights, or a `CheckpointError` saying why, never a crash or a huge allocation.

Seeds: a tiny vicocam safetensors checkpoint, a release-style ``.pt`` (with
its ``args``) and a bare state dict (`tests.fuzz.corpus`). Cases: byte edits
of them (truncated archives, corrupt bytes) and checkpoints rebuilt from the
seed's tensors with wrong dtypes, NaN or infinite weights, wrong shapes,
missing or extra tensors, and metadata that names another network.
"""

from __future__ import annotations

import argparse
import io
import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from networks.checkpoint import SAFE_FORMAT, CheckpointError
from tests.fuzz import tally
from tests.fuzz.corpus import seeds, tiny_generator
from tests.fuzz.mutations import mutated
from tests.fuzz.profiles import budget
from trt_engines.bundle import load_reenactor

safetensors_torch = pytest.importorskip("safetensors.torch")

SEEDS = seeds("checkpoints")
GENERATOR = tiny_generator()
STATE = {k: v.detach().clone() for k, v in GENERATOR.state_dict().items()}
KEYS = sorted(STATE)
DTYPES = (torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int8, torch.uint8,
          torch.bool, torch.complex64)
SPECIAL = (math.nan, math.inf, -math.inf, 1e38, -0.0)


def load(path) -> str:
    """How loading ``path`` ended; a loaded model is checked to be usable."""
    try:
        weights = load_reenactor(path)
    except CheckpointError as exc:
        assert str(exc)
        return "CheckpointError"
    for value in weights.reenactor.generator.state_dict().values():
        assert value.is_floating_point() and bool(torch.isfinite(value).all())
    return "loaded"


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_checkpoint_loads(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(SEEDS[name])
    assert load(path) == "loaded"
    tally.count("checkpoints.seeds", "loaded")


@budget(ci=80, fuzz=1000)
@given(case=mutated(SEEDS))
def test_damaged_checkpoint_files_load_or_are_refused(tmp_path_factory, case):
    name, data = case
    path = tmp_path_factory.mktemp("ckpt", numbered=True) / name
    path.write_bytes(data)
    tally.count("checkpoints.bytes", load(path))


# ---- rebuilt from the tensors --------------------------------------------------------------
@st.composite
def broken_tensor(draw: st.DrawFn, value: torch.Tensor) -> torch.Tensor:
    change = draw(st.sampled_from(["dtype", "special", "shape", "scalar", "empty"]))
    if change == "dtype":
        return value.to(draw(st.sampled_from(DTYPES)))
    if change == "special":
        out = value.clone().reshape(-1)
        out[draw(st.integers(0, out.numel() - 1))] = draw(st.sampled_from(SPECIAL))
        return out.reshape(value.shape)
    if change == "shape":
        return torch.zeros(*draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
    return torch.tensor(1.0) if change == "scalar" else torch.zeros(0)


@st.composite
def state_dicts(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    state = dict(STATE)
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)):
        action = draw(st.sampled_from(["break", "break", "drop", "rename"]))
        value = state.pop(key)
        if action == "break":
            state[key] = draw(broken_tensor(value))
        elif action == "rename":
            state[key + draw(st.sampled_from([".x", "_", ""]))] = value
    return {k: v.contiguous() for k, v in state.items()}


@st.composite
def model_configs(draw: st.DrawFn) -> str:
    """The seed's configuration JSON with up to two fields changed (or not JSON at all)."""
    config = json.loads(GENERATOR.config.to_json())
    values = st.none() | st.booleans() | st.integers(-2, 1 << 40) | st.text(max_size=4) \
        | st.lists(st.integers(-1, 1 << 20), max_size=8) | st.floats()
    for field in draw(st.lists(st.sampled_from([*config, "extra"]), max_size=2)):
        config[field] = draw(values)
    text = json.dumps(config)
    return draw(st.sampled_from([text, text, text, "[]", "5", "null", "{", ""]))


def safetensors_bytes(state: dict, config: str) -> bytes:
    meta = {"format": SAFE_FORMAT, "format_version": "1", "model_config": config}
    return safetensors_torch.save({f"gen.{k}": v for k, v in state.items()}, metadata=meta)


def torch_bytes(state: dict, args: object) -> bytes:
    buffer = io.BytesIO()
    torch.save({"gen": state, "args": args} if args is not None else state, buffer)
    return buffer.getvalue()


ARGS = st.one_of(st.none(), st.builds(argparse.Namespace, latent_dim_motion=st.integers(-3, 40),
                                      latent_dim_id=st.integers(-3, 40)),
                 st.dictionaries(st.sampled_from(["latent_dim_motion", "motion_dim"]),
                                 st.integers(-3, 40) | st.text(max_size=3)))


@budget(ci=80, fuzz=1000)
@given(state=state_dicts(), config=model_configs(), args=ARGS, as_torch=st.booleans())
def test_checkpoints_with_wrong_tensors_or_metadata_load_or_are_refused(
        tmp_path_factory, state, config, args, as_torch):
    folder = tmp_path_factory.mktemp("ckpt", numbered=True)
    path = folder / ("model.pt" if as_torch else "model.safetensors")
    path.write_bytes(torch_bytes(state, args) if as_torch else safetensors_bytes(state, config))
    tally.count("checkpoints.tensors", load(path))


@budget(ci=40, fuzz=500)
@given(config=model_configs())
def test_metadata_naming_another_network_is_refused_before_building_it(tmp_path_factory, config):
    path = tmp_path_factory.mktemp("ckpt", numbered=True) / "model.safetensors"
    path.write_bytes(safetensors_bytes(STATE, config))
    tally.count("checkpoints.metadata", load(path))
