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
* ``relative``: ``[a_s + a_d - a_d0 ; b_s]``: LIA's demo mode (and
  ViCoFace's 4-element alpha). Equal to LIA's ``D(a_d) - D(a_d0) + D(a_s)``
  in exact arithmetic because D is linear, but not in float32: see
  "Order of operations" below.
* ``cross``: ``[a_d ; b_s]``: ViCoFace cross-subject reenactment, the default
  for ViCoFace. For LIA (``id_dim = 0``) it equals ``absolute``.

``strength`` k scales the motion delta from the avatar's own coefficients:
``alpha = avatar + k * (target - avatar)``; k = 1 is the mode itself, k = 0
the avatar's self-reconstruction, k > 1 exaggerates.

Order of operations in relative mode. The two reference implementations
round differently:

* LIA (``Synthesis.forward`` with a 3-element alpha) applies D three times
  and sums the direction vectors:
  ``z = wa + (D(a_d) - D(a_d0)) + D(a_s)``, left to right.
* ViCoFace (``decode_latent_codeW`` with a 4-element alpha) sums the
  coefficients first and applies D once:
  ``z = wa + D([(a_d - a_d0) + a_s ; b_s])``.

`compose_latent` reproduces each family's order exactly (`relative_latent`
is LIA's); ``Generator.forward`` uses it. (D itself is LIA's
``sum(diag_embed(alpha) @ Q^T)`` while the basis is not frozen, and
``alpha @ Q^T`` once it is, for export: `networks.layers.Direction`.)

The exported ``generate`` graph takes one composed ``alpha``
(`compose_alpha`), so the live path renders LIA's relative mode in
ViCoFace's order. The two orders are one float32 rounding step apart
(``tests/networks/test_motion.py`` measures it):

* latent: on random inputs (coefficients of scale 0.1 to 100, 20
  directions, 512-d latents) a third to three quarters of the elements
  differ, each by at most 2.0 float32 eps of ``|wa| + sum_t |a_t| @ |Q|^T``
  (the test's bound is 4), i.e. about one ulp of ``z``;
* image: on random-weight LIA models (`networks.random_init`, seeds 3 and
  4, picture-like inputs) the max abs difference is 3.4e-6 at 32 px, 4.9e-6 for
  ``lia-64s`` and 3.0e-5 for ``lia-256`` (mean about 1e-7; the test's
  bound, on the 32 px model, is 1e-5).

That is the size of the rounding the export already carries in every mode:
computing D as ``alpha @ Q^T`` instead of LIA's ``diag_embed`` sum moves the
``lia-256`` image by 2.4e-5 to 2.7e-5, and it stays below the engines'
parity gates (ONNX Runtime export 1e-4, TensorRT FP32 1e-3, FP16 mean
5e-3). A graph fed the three coefficient sets would not make an engine
match LIA bit for bit, and would change the ``generate`` inputs of every
ONNX file, TensorRT plan, cache key and feed, so the graph keeps its single
``alpha`` input.
"""

from __future__ import annotations

from collections.abc import Callable
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
    """Coefficients ``[B, M]`` to render, from driver/avatar/reference ``[B or 1, M]``.

    Relative mode is composed in coefficient space, ``avatar + k * (driver -
    reference)`` with the ``b`` part of the delta zeroed: bit for bit
    ViCoFace's order, and within float32 rounding of LIA's, which applies D
    to each term: the latents differ by about one float32 ulp, the images
    by at most 3.0e-5 on a random-weight ``lia-256`` (module doc, "Order of
    operations"). `relative_latent` / `compose_latent` are LIA's exact order.
    """
    mode = _checked_mode(mode, driver, avatar, reference)
    if mode is MotionMode.RELATIVE and reference is not None:  # checked: never None here
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


def _checked_mode(
    mode: MotionMode | str, driver: Tensor, avatar: Tensor, reference: Tensor | None
) -> MotionMode:
    """``mode`` as a `MotionMode`; raises on coefficients that cannot be composed."""
    mode = MotionMode(mode)
    if driver.shape[-1] != avatar.shape[-1]:
        raise ValueError(
            f"driver has {driver.shape[-1]} coefficients, avatar {avatar.shape[-1]}:"
            " they must come from the same model"
        )
    if mode is MotionMode.RELATIVE and reference is None:
        raise ValueError("relative mode needs the reference driver coefficients")
    return mode


Direction = Callable[[Tensor], Tensor]
"""The motion decoder D: coefficients ``[B, M]`` -> direction vector ``[B, style_dim]``."""


def relative_latent(
    direction: Direction,
    wa: Tensor,
    driver: Tensor,
    avatar: Tensor,
    reference: Tensor,
    strength: float = 1.0,
) -> Tensor:
    """LIA's relative latent in LIA's order: ``wa + (D(a_d) - D(a_d0)) + D(a_s)``.

    ``wa [B, style_dim]``; driver / avatar / reference coefficients ``[B or 1,
    M]`` without a preservable part (LIA). ``strength`` k scales the moved
    part, ``wa + k * (D(a_d) - D(a_d0)) + D(a_s)``; k = 1 skips the product,
    so full strength is LIA's expression operation for operation.
    """
    moved = direction(driver) - direction(reference)
    if strength != 1.0:
        moved = strength * moved
    return wa + moved + direction(avatar)


def compose_latent(
    direction: Direction,
    wa: Tensor,
    mode: MotionMode | str,
    driver: Tensor,
    avatar: Tensor,
    motion_dim: int,
    reference: Tensor | None = None,
    strength: float = 1.0,
) -> Tensor:
    """The latent ``z [B, style_dim]`` to render, in the order of the family's own code.

    Relative mode without preservable coefficients (LIA) goes through
    `relative_latent`; every other case is ``wa + D(compose_alpha(...))``,
    which for relative mode with them is ViCoFace's order (module doc).
    Arguments as in `compose_alpha`, plus the source latent ``wa`` and D.
    """
    mode = _checked_mode(mode, driver, avatar, reference)
    lia = avatar.shape[-1] == motion_dim  # no preservable part: id_dim == 0
    if mode is MotionMode.RELATIVE and lia and reference is not None:  # checked: not None
        return relative_latent(direction, wa, driver, avatar, reference, strength)
    return wa + direction(compose_alpha(mode, driver, avatar, motion_dim, reference, strength))
