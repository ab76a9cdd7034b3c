"""The One-Euro filter: a low-pass whose cutoff rises with the signal's speed.

A still signal is smoothed hard (the cutoff sits at ``min_cutoff``), so
detector noise on a still face does not make the crop shimmer; a fast move
raises the cutoff by ``beta x speed`` so the crop follows without lag
(Casiez, Roussel and Vogel, CHI 2012).

Time is always passed in (the frame's capture time), never read from a
clock: the filter is then exact under replay and testable with injected time,
and a late frame is filtered with the gap it really had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OneEuroConfig:
    """Parameters of a `OneEuroFilter`.

    Attributes:
        min_cutoff: cutoff frequency in Hz when the signal is still. Lower
            means a steadier still signal and more lag on slow drifts.
        beta: how fast the cutoff rises with speed, in Hz per (unit of
            ``speed / scale``); see `OneEuroFilter.__call__`. ``0`` makes a
            plain first-order low-pass.
        d_cutoff: cutoff in Hz of the low-pass on the speed estimate itself.
    """

    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0:
            raise ValueError("One-Euro cutoffs must be positive (they are frequencies in Hz)")
        if self.beta < 0:
            raise ValueError(f"One-Euro beta must be >= 0, got {self.beta}")


def smoothing_factor(cutoff_hz: float, dt: float) -> float:
    """Weight of the new sample in an exponential low-pass at ``cutoff_hz`` after ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter of a scalar or a vector with one shared cutoff.

    For a vector (a crop centre), the speed is the Euclidean norm of the
    filtered derivative, so a diagonal move is smoothed like a straight one
    and x and y never lag by different amounts.
    """

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._value: Vector | None = None
        self._speed: Vector | None = None
        self._time = 0.0

    @property
    def value(self) -> Vector | None:
        """The last filtered value, or ``None`` before the first sample."""
        return None if self._value is None else self._value.copy()

    def reset(self) -> None:
        """Forget the past; the next sample passes through unchanged."""
        self._value = None
        self._speed = None

    def __call__(self, x: npt.ArrayLike, t: float, scale: float = 1.0) -> Vector:
        """Filter sample ``x`` taken at time ``t`` (seconds); returns the filtered value.

        Args:
            x: a scalar or a 1-D vector, the same shape at every call.
            t: the sample's time. A sample not later than the previous one is
                ignored (the previous output is returned): it carries no
                interval to filter over.
            scale: the unit speed is measured in: the cutoff is
                ``min_cutoff + beta * |speed| / scale``. The tracker passes
                the face size, so ``beta`` means the same for a near and a far
                face.
        """
        sample = np.atleast_1d(np.asarray(x, dtype=np.float64))
        if self._value is None or self._speed is None:
            self._value, self._speed, self._time = sample.copy(), np.zeros_like(sample), t
            return sample.copy()
        if sample.shape != self._value.shape:
            raise ValueError(f"sample shape {sample.shape} differs from {self._value.shape}")
        dt = t - self._time
        if dt <= 0:
            return self._value.copy()
        raw_speed = (sample - self._value) / dt
        self._speed += smoothing_factor(self.config.d_cutoff, dt) * (raw_speed - self._speed)
        speed = float(np.linalg.norm(self._speed)) / max(scale, 1e-12)
        cutoff = self.config.min_cutoff + self.config.beta * speed
        self._value += smoothing_factor(cutoff, dt) * (sample - self._value)
        self._time = t
        return self._value.copy()
