"""Export-ready inference graphs: the per-frame work as two pure tensor functions.

* ``MotionGraph``: ``driver [B, 3, S, S]`` -> ``coeffs [B, M]`` (encode + fc).
* ``GenerateGraph``: ``latent [B, style]``, ``alpha [B, M]``,
  ``feat_0 .. feat_{n-1}`` (coarse to fine, ``[B, C_k, 8*2^k, 8*2^k]``) ->
  ``image [B, 3, S, S]``.

Between the two, the composition of ``alpha`` (``networks.motion``) runs on
tiny vectors outside any graph. One composed ``alpha`` means LIA's relative
mode is rendered as ``wa + D(a_s + (a_d - a_d0))``, not in LIA's order
``wa + (D(a_d) - D(a_d0)) + D(a_s)``: the latents differ by float32 rounding
(measured in `networks.motion`, "Order of operations"), far below what any
engine's own arithmetic moves, so the graph keeps one ``alpha`` input.

Both graphs use the non-fused modulated conv and the frozen QR basis, so they
export to ONNX opset 18 with a dynamic batch (see ``export_kwargs``).
Constructing a graph switches the shared generator's modulated convs to the
non-fused form and freezes its basis; both are the same function as the
reference, to float rounding.

The I/O specs are the engines' own `trt_engines.engine.TensorSpec`, so a
graph's ``input_specs`` / ``output_specs`` go to any backend unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from networks.config import ModelConfig
from networks.generator import Generator
from networks.layers import set_fused_modconv
from trt_engines.engine import TensorSpec


class _Graph(nn.Module):
    """Shared I/O description of the two graphs."""

    config: ModelConfig

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        raise NotImplementedError

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        raise NotImplementedError

    def example_inputs(self, batch: int = 1, seed: int = 0) -> tuple[Tensor, ...]:
        """Random inputs for tracing / parity checks, on the graph's device."""
        rng = torch.Generator().manual_seed(seed)
        device = next(self.parameters()).device
        return tuple(spec.example(batch, rng).to(device) for spec in self.input_specs)

    def export_kwargs(self) -> dict[str, Any]:
        """Names and dynamic axes for ``torch.onnx.export(..., dynamo=False)``."""
        specs = self.input_specs + self.output_specs
        return {
            "input_names": [s.name for s in self.input_specs],
            "output_names": [s.name for s in self.output_specs],
            "dynamic_axes": {s.name: {0: "batch"} for s in specs},
            "opset_version": 18,
        }


class MotionGraph(_Graph):
    """``forward(driver [B, 3, S, S] in [-1, 1]) -> coeffs [B, motion_dim + id_dim]``."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.config = generator.config
        self.enc = generator.enc

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        size = self.config.size
        return (TensorSpec("driver", (None, 3, size, size)),)

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("coeffs", (None, self.config.coeff_dim)),)

    def forward(self, driver: Tensor) -> Tensor:
        return self.enc.encode_motion(driver)


class GenerateGraph(_Graph):
    """``forward(latent, alpha, feat_0, ..., feat_{n-1}) -> image [B, 3, S, S]``.

    ``latent`` is the avatar's ``wa`` (not ``z``): the graph adds ``alpha @ Q^T``.
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.config = generator.config
        self.dec = generator.dec
        set_fused_modconv(self.dec, fused=False)
        if not self.dec.direction.frozen:
            self.dec.direction.freeze()

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        cfg = self.config
        feats = tuple(
            TensorSpec(f"feat_{k}", (None, *shape)) for k, shape in enumerate(cfg.feature_shapes)
        )
        return (
            TensorSpec("latent", (None, cfg.style_dim)),
            TensorSpec("alpha", (None, cfg.coeff_dim)),
            *feats,
        )

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        size = self.config.size
        return (TensorSpec("image", (None, 3, size, size)),)

    def forward(self, latent: Tensor, alpha: Tensor, *feats: Tensor) -> Tensor:
        return self.dec(latent, alpha, feats)
