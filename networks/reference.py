"""The relative-mode reference frame of one driving stream, and when it resets.

Relative mode renders ``[a_s + a_d - a_d0 ; b_s]`` (LIA's own order:
``wa + (D(a_d) - D(a_d0)) + D(a_s)``) where ``a_d0`` comes from the
reference driver frame (see `networks.motion`). `RelativeReference` is
the only owner of that frame's coefficients and of the rules that start a
new one, so a live stage and an offline loop cannot drift apart.

The reference is the first driven frame (a frame with coefficients)

* after the tracker was created,
* after a reset request (the settings' reset counter changed),
* after a change of motion mode,
* after the face was lost (a frame without coefficients).

It is tracked in every mode, so switching to relative mode (a mode change)
starts from the frame of the switch, and "was just reset" is reported the
same way whatever the mode.

Not thread-safe: one stream, one tracker, called from that stream's thread.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from networks.motion import MotionMode


class ReferenceUpdate(NamedTuple):
    """What one frame should use.

    Attributes:
        coeffs: the reference driver frame's coefficients ``[1, M]``;
            ``None`` when the frame has no face (nothing to render against).
        reset: ``True`` when this frame just became the reference.
    """

    coeffs: Tensor | None
    reset: bool


class RelativeReference:
    """Owns one stream's reference coefficients and their reset rules (module doc)."""

    def __init__(self) -> None:
        self._coeffs: Tensor | None = None
        self._reset_count: int | None = None  # None: no frame seen yet
        self._mode: MotionMode | None = None

    @property
    def coeffs(self) -> Tensor | None:
        """The current reference ``[1, M]``; ``None`` until the next driven frame."""
        return self._coeffs

    def update(self, mode: MotionMode, reset_count: int, coeffs: Tensor | None) -> ReferenceUpdate:
        """Apply this frame's settings and coefficients; return the reference to use.

        Args:
            mode: the frame's resolved motion mode (never the family default's ``None``).
            reset_count: the settings' reset counter; a change asks for a new reference.
            coeffs: the frame's driver coefficients ``[1, M]``, ``None`` when the
                face was lost. Kept by reference (not copied) when it becomes
                the reference: the caller must not write into it later.
        """
        if self._settings_changed(mode, reset_count) or coeffs is None:
            self._coeffs = None
        if coeffs is None:
            return ReferenceUpdate(None, reset=False)
        reset = self._coeffs is None
        if reset:
            self._coeffs = coeffs
        return ReferenceUpdate(self._coeffs, reset)

    def _settings_changed(self, mode: MotionMode, reset_count: int) -> bool:
        """Whether a reset was asked or the mode changed since the previous frame."""
        changed = (self._reset_count is not None and reset_count != self._reset_count) or (
            self._mode is not None and mode is not self._mode
        )
        self._reset_count, self._mode = reset_count, mode
        return changed
