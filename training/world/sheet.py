"""A contact sheet: identities down, motions across, for looking at the world."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from training.world.identity import Identity
from training.world.motion import Motion
from training.world.render import render


def contact_sheet(
    identities: Sequence[Identity], motions: Sequence[Motion], size: int, gap: int = 2
) -> npt.NDArray[np.uint8]:
    """Row ``i``, column ``j`` shows ``render(identities[i], motions[j], size)``.

    Returns an RGB uint8 image with ``gap`` white pixels between tiles. Each
    column is one motion, so it reads as a cross-reenactment table: down a
    column the motion is shared, along a row the identity is.
    """
    if not identities or not motions:
        raise ValueError("a contact sheet needs at least one identity and one motion")
    step = size + gap
    sheet = np.full((len(identities) * step - gap, len(motions) * step - gap, 3), 255, np.uint8)
    for i, identity in enumerate(identities):
        for j, motion in enumerate(motions):
            tile = render(identity, motion, size).image
            sheet[i * step : i * step + size, j * step : j * step + size] = tile
    return sheet
