"""The LIA / ViCoFace networks, their checkpoints and the avatar inference API.

Modules, read in this order:

* ``config``: ``ModelConfig`` / ``DiscriminatorConfig`` and the registry
  (``get_config("vicoface-256")``, ``list_configs()``), with the measured
  parameter, FLOP and CPU figures of every registered size.
* ``layers``: StyleGAN2-style building blocks, ``ModulatedConv2d`` (fused and
  non-fused), ``ToFlow`` warping, the QR ``Direction`` basis.
* ``generator``: ``Encoder``, ``Synthesis``, ``Generator`` (``enc`` / ``dec``).
* ``discriminator``: the StyleGAN2 ResNet discriminator.
* ``motion``: the motion modes and the composition of coefficients (and of
  the latent, in LIA's order for its relative mode).
* ``graphs``: ``MotionGraph`` / ``GenerateGraph``, the export-ready per-frame graphs.
* ``avatar``: ``Reenactor``, ``Avatar``: inference with a cached avatar.
* ``reference``: ``RelativeReference``, a stream's relative-mode reference and
  its reset rules.
* ``checkpoint``: safe loading of release ``.pt`` files, vicocam safetensors files.
* ``flops``: parameter counts, FLOPs and CPU time per frame.
* ``random_init``: seeded random weights with a trained model's flow sizes,
  for checks and runs without a checkpoint.
"""

from networks.avatar import Avatar, Reenactor
from networks.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    TrainingDomain,
    UnsafeCheckpointError,
    checkpoint_domain,
    load_generator,
    save_checkpoint,
)
from networks.config import DiscriminatorConfig, ModelConfig, get_config, list_configs
from networks.discriminator import Discriminator
from networks.generator import Generator
from networks.graphs import GenerateGraph, MotionGraph, TensorSpec
from networks.motion import MotionMode, compose_alpha, compose_latent
from networks.reference import ReferenceUpdate, RelativeReference

__all__ = [
    "Avatar",
    "CheckpointError",
    "CheckpointMismatchError",
    "Discriminator",
    "DiscriminatorConfig",
    "GenerateGraph",
    "Generator",
    "ModelConfig",
    "MotionGraph",
    "MotionMode",
    "Reenactor",
    "ReferenceUpdate",
    "RelativeReference",
    "TensorSpec",
    "TrainingDomain",
    "UnsafeCheckpointError",
    "checkpoint_domain",
    "compose_alpha",
    "compose_latent",
    "get_config",
    "list_configs",
    "load_generator",
    "save_checkpoint",
]
