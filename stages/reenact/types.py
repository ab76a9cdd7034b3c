"""Typed per-frame results of the avatar path (stored with ``frame.put``).

Device tensors travel with the `StreamEvent` their producer recorded after
enqueuing the work that fills them: a consumer calls ``its_stream.wait(ready)``
before touching the tensor. On the CPU the event is already recorded when
the frame moves on (the CPU stand-in stream is synchronous), so the wait is
free; on a GPU it orders the consumer's stream after the producer's work
without blocking the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from stages.reenact.live_settings import LiveSettings
from trt_engines.streams import StreamEvent

if TYPE_CHECKING:
    from stages.reenact.avatar import PreparedAvatar


@dataclass(frozen=True, slots=True, eq=False)
class AvatarFrame:
    """The settings snapshot and the avatar this frame is rendered with.

    Attributes:
        settings: the `LiveSettings` read once when the frame entered the
            avatar path; every later stage of this frame uses it.
        avatar: the prepared avatar current at that moment.
    """

    settings: LiveSettings
    avatar: PreparedAvatar


@dataclass(frozen=True, slots=True, eq=False)
class DeviceFrame:
    """The driving picture on the compute device.

    Attributes:
        image: ``[1, 3, H, W]`` uint8 RGB on the device (a zero-copy view of
            ``frame.image`` on the CPU).
        ready: recorded after the upload was enqueued.
    """

    image: Tensor
    ready: StreamEvent


@dataclass(frozen=True, slots=True, eq=False)
class DriverMotion:
    """The driving face's motion coefficients, or nothing when no face is tracked.

    Attributes:
        coeffs: ``[1, motion_dim + id_dim]`` float on the device; ``None``
            when the tracker reported LOST (the avatar is shown at rest).
        ready: recorded after the encoder's work was enqueued.
    """

    coeffs: Tensor | None
    ready: StreamEvent

    @property
    def has_face(self) -> bool:
        return self.coeffs is not None


@dataclass(frozen=True, slots=True, eq=False)
class AvatarRender:
    """The generated face crop of this frame.

    Attributes:
        image: ``[1, 3, S, S]`` float in about ``[-1, 1]`` on the device (the
            generator's output is not clamped; the compositor clamps).
        ready: recorded after the generator's work was enqueued.
        at_rest: ``True`` when no face drove this frame and ``image`` is the
            avatar's rest picture.
        reference_reset: ``True`` when this frame became the new relative
            reference (after a reset request, a mode change or a lost face).
    """

    image: Tensor
    ready: StreamEvent
    at_rest: bool
    reference_reset: bool = False
