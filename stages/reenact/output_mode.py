"""`OutputMode`: what the compositor writes, importable without torch (the CLI offers it)."""

from __future__ import annotations

import enum


class OutputMode(enum.StrEnum):
    """What the compositor writes into the output picture.

    CROP: the generated face crop, scaled to fit the output (letterboxed).
    PASTE: the generated face pasted back into the full avatar portrait
        through a feathered mask; pixels outside the mask are the portrait's.
    SIDE_BY_SIDE: ``driver | avatar``: the driving picture on the left, the
        pasted portrait on the right (for demos and recordings).
    """

    CROP = "crop"
    PASTE = "paste"
    SIDE_BY_SIDE = "side_by_side"
