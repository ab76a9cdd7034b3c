"""The vicocam model's two per-frame graphs as export cases, with picture-like inputs.

``motion`` (driver crop ``[B, 3, S, S]`` -> ``coeffs [B, M]``) and
``generate`` (``latent [B, D]``, ``alpha [B, M]``, ``feat_k`` -> ``image
[B, 3, S, S]``) are the graphs every backend runs per frame (see
`networks.graphs`). Their parity inputs are drawn as the avatar path makes
them, not as white noise: a randomly initialised generator fed uniform
noise is so ill-conditioned that float32 rounding alone moves its output by
1e-2, which would hide a wrong export behind noise. So:

- ``motion`` gets random pictures (smooth colour waves in [-0.9, 0.9]);
- ``generate`` gets the latent and features of one such picture encoded as
  the avatar, and the coefficients of other pictures encoded as drivers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from networks.avatar import Reenactor
from trt_engines.engine import TensorSpec
from trt_engines.graph_export import GraphCase
from trt_engines.parity import FeedMaker

GRAPH_NAMES = ("motion", "generate")


def random_pictures(batch: int, size: int, seed: int) -> torch.Tensor:
    """``[batch, 3, size, size]`` float32 low-frequency colour waves in [-0.9, 0.9].

    Picture-like: neighbouring pixels are close, as in a face crop, so
    warping them is well-conditioned. Same seed, same pictures.
    """
    gen = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1.0, 1.0, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    freq = torch.rand(batch, 3, 2, 1, 1, generator=gen) * 4
    phase = torch.rand(batch, 3, 1, 1, generator=gen) * 6
    return 0.9 * torch.sin(freq[:, :, 0] * x + freq[:, :, 1] * y + phase)


def motion_feeds(size: int) -> FeedMaker:
    """Feeds for the ``motion`` graph: ``driver`` = random pictures."""

    def make(specs: Sequence[TensorSpec], batch: int, seed: int) -> dict[str, torch.Tensor]:
        _expect_names(specs, ["driver"])
        return {"driver": random_pictures(batch, size, seed)}

    return make


def generate_feeds(reenactor: Reenactor) -> FeedMaker:
    """Feeds for the ``generate`` graph: an encoded avatar and encoded driver pictures."""
    size = reenactor.config.size

    def make(specs: Sequence[TensorSpec], batch: int, seed: int) -> dict[str, torch.Tensor]:
        avatar = reenactor.prepare_avatar(random_pictures(1, size, seed))
        alpha = reenactor.encode_motion(random_pictures(batch, size, seed + 1))
        feats = {f"feat_{k}": f.cpu().repeat(batch, 1, 1, 1) for k, f in enumerate(avatar.feats)}
        feeds = {"latent": avatar.latent.cpu().repeat(batch, 1), "alpha": alpha.cpu(), **feats}
        _expect_names(specs, list(feeds))
        return feeds

    return make


def _expect_names(specs: Sequence[TensorSpec], names: list[str]) -> None:
    declared = [s.name for s in specs]
    if declared != names:
        raise ValueError(f"these feeds are for inputs {names}, the engine takes {declared}")


def model_cases(reenactor: Reenactor) -> tuple[GraphCase, GraphCase]:
    """``(motion, generate)`` export cases of ``reenactor``'s graphs (CPU weights)."""
    motion, generate = reenactor.motion_graph, reenactor.generate_graph
    return (
        GraphCase(
            "motion",
            motion,
            motion.input_specs,
            motion.output_specs,
            motion_feeds(motion.config.size),
        ),
        GraphCase(
            "generate",
            generate,
            generate.input_specs,
            generate.output_specs,
            generate_feeds(reenactor),
        ),
    )
