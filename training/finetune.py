"""Start a ViCoFace generator from a trained LIA generator (e.g. the released vox.pt).

Every tensor has the same shape in both except the last motion-MLP layer
(``enc.fc.<n-1>``: 20 -> 20 + 10 rows) and the basis ``dec.direction.weight``
(20 -> 20 + 10 columns). The conversion:

* copies all shared tensors, the 20 LIA fc rows and the 20 LIA basis columns;
* sets the 10 new basis columns to random directions orthogonal to the LIA
  basis, scaled to the mean LIA column norm. QR orthonormalises the columns
  in order (Gram-Schmidt), so the first 20 columns of Q stay exactly LIA's Q
  and the new ones span directions LIA never used;
* sets the 10 new fc rows to small random values (std ``new_row_std`` in
  EqualLinear's unscaled units) and their biases to 0, so ``b`` starts near
  0 and the converted model renders almost exactly what LIA rendered.

The discriminator is shared as is (identical architecture). Read release
files with ``networks.checkpoint.read_release_checkpoint`` (safe loading).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from networks.config import ModelConfig


def _orthogonal_columns(basis: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` random unit columns ``[D, count]`` orthogonal to span(basis) and each other."""
    q_old = torch.linalg.qr(basis.double(), mode="reduced").Q
    raw = torch.randn(basis.shape[0], count, generator=generator, dtype=torch.float64)
    raw = raw - q_old @ (q_old.t() @ raw)
    return torch.linalg.qr(raw, mode="reduced").Q


def lia_to_vicoface(
    lia_state: Mapping[str, Tensor], config: ModelConfig, seed: int = 0, new_row_std: float = 0.01
) -> dict[str, Tensor]:
    """A ViCoFace generator state dict for ``config`` from a LIA one (see module doc)."""
    if config.family != "vicoface":
        raise ValueError(f"target config {config.name} is not a ViCoFace config")
    fc_key = f"enc.fc.{config.n_fc - 1}"
    dir_key = "dec.direction.weight"
    lia_dir = lia_state[dir_key]
    if lia_dir.shape != (config.style_dim, config.motion_dim):
        raise ValueError(
            f"LIA basis is {list(lia_dir.shape)}, config {config.name} needs"
            f" [{config.style_dim}, {config.motion_dim}] transferable directions"
        )
    gen = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in lia_state.items()}
    scale = lia_dir.norm(dim=0).mean()
    extra = _orthogonal_columns(lia_dir, config.id_dim, gen) * scale
    state[dir_key] = torch.cat([lia_dir, extra.to(lia_dir.dtype)], dim=1)
    weight, bias = lia_state[f"{fc_key}.weight"], lia_state[f"{fc_key}.bias"]
    new_rows = torch.randn(config.id_dim, weight.shape[1], generator=gen) * new_row_std
    state[f"{fc_key}.weight"] = torch.cat([weight, new_rows.to(weight.dtype)], dim=0)
    state[f"{fc_key}.bias"] = torch.cat([bias, bias.new_zeros(config.id_dim)], dim=0)
    return state


__all__ = ["lia_to_vicoface"]
