"""Measuring equipment for the WebRTC path, not part of a call.

`StampRelay` carries the frame index stamped in the incoming picture
(`stages.stamp`) over to the outgoing one, so a browser can match a returned
avatar frame to the camera frame that drove it (the avatar itself does not
keep the stamp band).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pipeline.frame import Frame
from pipeline.stage import Stage, StageBase
from stages.reenact.live_settings import LiveSettingsBox
from stages.stamp import read_stamp, stamp
from stages.webrtc.peer_session import StageFactory


@dataclass(frozen=True, slots=True)
class StampIndex:
    """The frame index read from the incoming picture (``None``: no readable stamp)."""

    index: int | None


class ReadStamp(StageBase):
    """Reads the stamped frame index of the incoming picture (`StampIndex`)."""

    name = "stamp_in"
    blocking: ClassVar[bool] = False  # 36 cell means: microseconds
    produces: ClassVar[frozenset[type]] = frozenset({StampIndex})

    def process(self, frame: Frame) -> Frame:
        frame.put(StampIndex(read_stamp(frame.image)))
        return frame


class WriteStamp(StageBase):
    """Stamps the outgoing picture with the index read on the way in."""

    name = "stamp_out"
    blocking: ClassVar[bool] = False
    needs: ClassVar[frozenset[type]] = frozenset({StampIndex})

    def process(self, frame: Frame) -> Frame:
        index = frame.get(StampIndex).index
        if index is not None:
            # A copy: the picture may be a buffer a stage still owns.
            image = np.array(frame.image, copy=True)
            stamp(image, index)
            frame.image = image
        return frame


class StampRelay:
    """A `StageFactory` around another: ``[ReadStamp, *inner, WriteStamp]``."""

    def __init__(self, inner: StageFactory) -> None:
        self.inner = inner

    def __call__(self, settings: LiveSettingsBox) -> list[Stage]:
        return [ReadStamp(), *self.inner(settings), WriteStamp()]
