"""Decoded PyAV frames to RGB arrays without a burst of threads per frame.

``VideoFrame.to_ndarray(format="rgb24")`` makes a new swscale context for
every frame with swscale's default of one worker thread per core, so every
converted frame starts and ends that many native threads: 2 per frame on a
2-core machine, 16 on a 16-core server, per session, 30 times a second
(found by `vicocam bench soak`, whose thread counts they made jitter). At
640 x 480 that conversion took 0.56 ms; one kept reformatter run on the
calling thread gave the same pixels in 0.12 ms and started no thread.
"""

from __future__ import annotations

import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from pipeline.frame import Image


class RgbConverter:
    """Converts frames to ``(H, W, 3)`` uint8 RGB with one reused, single-threaded swscale.

    One converter per stream and thread (a swscale context is not shared
    across threads).
    """

    def __init__(self) -> None:
        self._reformatter = VideoReformatter()

    def __call__(self, frame: VideoFrame, width: int | None = None, height: int | None = None,
                 interpolation: str | None = None) -> Image:
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                         interpolation=interpolation, threads=1)
        return np.asarray(rgb.to_ndarray(), dtype=np.uint8)
