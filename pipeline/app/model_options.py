"""The model options of every command that takes a model: declared, built and loaded once.

`add_model_options` adds ``--checkpoint``, ``--config``, ``--backend``,
``--device``, ``--threads`` and ``--precision`` (commands that only need the
weights leave out the engine options; ``--precision`` left out means FP16
with TensorRT on CUDA, FP32 elsewhere); `model_spec` builds the
`trt_engines.bundle.ModelSpec` from the parsed arguments; `open_model` loads
it (weights and engines) and `open_weights` only its weights, each turning
what the user can fix into a one-line `UserError`. Choices come from the
`BackendName` and `Precision` enums and the configuration list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.app.options import add_deprecated, choices, positive_int
from pipeline.errors import UserError
from trt_engines.backends import BackendName, Precision

if TYPE_CHECKING:
    from networks.avatar import Reenactor
    from trt_engines.bundle import ModelBundle, ModelSpec


def add_config_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      help: str) -> None:
    """``--config NAME`` (a model configuration); ``--model-config`` and ``--model``
    are its old spellings."""
    parser.add_argument("--config", default=None, metavar="NAME", help=help)
    add_deprecated(parser, "--model-config", "--config", "config")
    add_deprecated(parser, "--model", "--config", "config")


AUTO_PRECISION = "auto"
"""``--precision``'s default in the commands that run the live engines: FP16 on
TensorRT (a CUDA device), FP32 on every other backend."""


def add_model_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                      device: str = "cpu", backend: bool = True,
                      precision: Precision | str | None = AUTO_PRECISION) -> None:
    """The model specification's options (see `model_spec`).

    Commands that always use one backend leave out ``--backend``
    (``backend=False``); those that compute in FP32 only, ``--precision``
    (``precision=None``); ``device`` and ``precision`` are the defaults
    (`AUTO_PRECISION`: FP16 with TensorRT, else FP32).
    """
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model weights (.safetensors/.pt); default: the bundled demo "
                             "model, or random weights of --config")
    add_config_option(parser, "build this configuration with random weights instead of "
                              "loading a checkpoint (see 'vicocam model info')")
    if backend:
        parser.add_argument("--backend", choices=choices(BackendName), default=None,
                            help="inference backend (default: onnxruntime on the CPU, "
                                 "tensorrt on CUDA)")
    if precision is not None:
        default = "fp16 with TensorRT on CUDA, else fp32" if precision == AUTO_PRECISION \
            else str(precision)
        parser.add_argument("--precision", choices=choices(Precision),
                            default=None if precision == AUTO_PRECISION else str(precision),
                            help=f"fp32 or fp16 (TensorRT only) (default: {default})")
    parser.add_argument("--device", default=device, help=f"cpu or cuda:N ({device})")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="intra-op threads per model engine (default 1: the stages "
                             "already run in parallel)")
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="where exported graphs and TensorRT plans are kept "
                             "(default: $VICOCAM_CACHE or ~/.cache/vicocam)")


def model_spec(args: argparse.Namespace, *, weights_only: bool = False,
               max_batch: int | None = None) -> ModelSpec:
    """The `ModelSpec` the arguments ask for; `UserError` for invalid values.

    ``weights_only``: the command uses the weights, not engines of the spec
    (its ``--precision`` means something else, e.g. which graphs to export).
    ``max_batch``: the engines' largest batch (``engines build --max-batch``,
    ``serve``'s session limit); ``None`` = `DEFAULT_MAX_BATCH`, which is what
    ``vicocam run`` uses, so the plans of a default build serve both.
    """
    from networks.config import list_configs
    from trt_engines.bundle import DEFAULT_MAX_BATCH, ModelSpec

    if args.checkpoint is not None and args.config is not None:
        raise UserError("give --checkpoint (the file names its configuration) or --config, "
                        "not both")
    if args.config is not None and args.config not in list_configs():
        raise UserError(f"unknown configuration {args.config!r}; choose one of "
                        f"{', '.join(list_configs())}")
    try:
        return ModelSpec(checkpoint=args.checkpoint, config=args.config,
                         backend=_enum(BackendName, getattr(args, "backend", None)),
                         device=args.device, threads=args.threads, cache_dir=args.cache,
                         precision=Precision.FP32 if weights_only else _precision(args),
                         max_batch=DEFAULT_MAX_BATCH if max_batch is None else max_batch)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _enum(kind: type[BackendName], value: str | None) -> BackendName | None:
    return None if value is None else kind(value)


def _precision(args: argparse.Namespace) -> Precision | None:
    value = getattr(args, "precision", None)
    return None if value is None else Precision(value)


def open_model(spec: ModelSpec) -> ModelBundle:
    """Load the weights and open the engines; announce which model runs."""
    from networks.checkpoint import CheckpointError
    from trt_engines.bundle import open_bundle
    from trt_engines.errors import BackendUnavailableError

    print("vicocam: preparing the model (the first run of a model also exports its graphs)...",
          file=sys.stderr)
    try:
        bundle = open_bundle(spec)
    except (BackendUnavailableError, CheckpointError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    announce_model(bundle.label, bundle.trained)
    return bundle


def open_weights(spec: ModelSpec) -> tuple[Reenactor, str]:
    """The reenactor (CPU weights) ``spec`` names, and where its weights came from."""
    from networks.checkpoint import CheckpointError
    from trt_engines.bundle import load_weights

    try:
        weights = load_weights(spec)
    except (CheckpointError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    return weights.reenactor, weights.label


def announce_model(label: str, trained: bool) -> None:
    """Say on stderr which model runs, and loudly when its weights are random."""
    print(f"vicocam: model {label}", file=sys.stderr)
    if not trained:
        print("vicocam: no trained model (no --checkpoint, nothing under networks/pretrained/, "
              "or --config asked for random weights): the weights are RANDOM, so the avatar "
              "shows noise where the face should be. Pass --checkpoint FILE for real output.",
              file=sys.stderr)
