"""Composition of motion coefficients (spec A.3 and B.2).

The generator renders ``z = wa_s + D(alpha)`` where ``alpha = [a ; b]`` holds
the transferable coefficients ``a`` (``motion_dim``) and, for ViCoFace, the
preservable ones ``b`` (``id_dim``; LIA has none). Every mode below chooses
``alpha`` from three small vectors, all ``[B, M]`` or ``[1, M]``:

* ``avatar``: the avatar's own coefficients ``[a_s ; b_s]`` (from ``fc(wa_s)``),
* ``driver``: the current driving frame's ``[a_d ; b_d]``,
* ``reference``: the reference driving frame's ``[a_d0 ; b_d0]`` (relative only).

Modes (full strength):

* ``absolute``: ``[a_d ; b_d]``: LIA's absolute mode; for ViCoFace the
  self-reenactment path (the driver's preservable part too).
* ``relative``: ``[a_s + a_d - a_d0 ; b_s]``: LIA's demo mode. Equal to
  LIA's ``D(a_d) - D(a_d0) + D(a_s)`` because D is linear.
* ``cross``: ``[a_d ; b_s]``: ViCoFace cross-subject reenactment, the default
  for ViCoFace. For LIA (``id_dim = 0``) it equals ``absolute``.

``strength`` k scales the motion delta from the avatar's own coefficients:
``alpha = avatar + k * (target - avatar)``; k = 1 is the mode itself, k = 0
the avatar's self-reconstruction, k > 1 exaggerates.
"""

from __future__ import annotations

from enum import StrEnum

import torch
from torch import Tensor


class MotionMode(StrEnum):
    """How driver coefficients become the rendered coefficients (see module doc)."""

    ABSOLUTE = "absolute"
    RELATIVE = "relative"
    CROSS = "cross"


def default_mode(family: str) -> MotionMode:
    """Cross-subject for ViCoFace (what it was trained for), relative for LIA (its demo)."""
    return MotionMode.CROSS if family == "vicoface" else MotionMode.RELATIVE


def compose_alpha(
    mode: MotionMode | str,
    driver: Tensor,
    avatar: Tensor,
    motion_dim: int,
    reference: Tensor | None = None,
    strength: float = 1.0,
) -> Tensor:
    """Coefficients ``[B, M]`` to render, from driver/avatar/reference ``[B or 1, M]``."""
    mode = MotionMode(mode)
    if driver.shape[-1] != avatar.shape[-1]:
        raise ValueError(
            f"driver has {driver.shape[-1]} coefficients, avatar {avatar.shape[-1]}:"
            " they must come from the same model"
        )
    if mode is MotionMode.RELATIVE:
        if reference is None:
            raise ValueError("relative mode needs the reference driver coefficients")
        delta = (driver - reference).clone()
        delta[:, motion_dim:] = 0.0  # b stays the avatar's
        return avatar + delta if strength == 1.0 else avatar + strength * delta
    target = driver
    if mode is MotionMode.CROSS:
        a_d, b_s = driver[:, :motion_dim], avatar[:, motion_dim:]
        target = torch.cat([a_d, b_s.expand(a_d.shape[0], -1)], dim=1)
    if strength == 1.0:
        return target
    return avatar + strength * (target - avatar)
