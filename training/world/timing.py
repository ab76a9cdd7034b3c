"""How long one frame of the world takes to render, on one core.

``python -m training.world.timing [--sizes 64 128 256] [--frames 60]`` prints
one JSON object with the command, the machine and, per size, the median wall
and CPU milliseconds per frame over varied identities and motions. CPU time
is the better figure on a shared machine: it does not count time spent
waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from training.world.identity import Identity
from training.world.motion import MotionClip, sample_clip
from training.world.render import render

Clock = Callable[[], float]


@dataclass(frozen=True)
class TimingConfig:
    """Sizes to time and how many frames (identities) per size; ``warmup`` frames are not timed."""

    sizes: tuple[int, ...] = (64, 128, 256)
    frames: int = 60
    warmup: int = 5


def measure(
    config: TimingConfig,
    wall: Clock = time.perf_counter,
    cpu: Clock = time.process_time,
) -> dict[str, dict[str, float]]:
    """Median milliseconds per frame, per size: ``{"128": {"wall_ms": .., "cpu_ms": ..}}``."""
    clip = sample_clip(0, config.frames)
    identities = [Identity.from_seed(s) for s in range(config.frames)]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one core, as in a data-loading worker
    try:
        return {
            str(size): _time_size(size, identities, clip, (wall, cpu), config.warmup)
            for size in config.sizes
        }
    finally:
        cv2.setNumThreads(threads)


def _time_size(
    size: int,
    identities: list[Identity],
    clip: MotionClip,
    clocks: tuple[Clock, Clock],
    warmup: int,
) -> dict[str, float]:
    wall, cpu = clocks
    for identity in identities[:warmup]:
        render(identity, clip[0], size)
    walls, cpus = [], []
    for t, identity in enumerate(identities):
        w0, c0 = wall(), cpu()
        render(identity, clip[t], size)
        walls.append(wall() - w0)
        cpus.append(cpu() - c0)
    return {"wall_ms": 1000 * float(np.median(walls)), "cpu_ms": 1000 * float(np.median(cpus))}


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args(argv)
    config = TimingConfig(sizes=tuple(args.sizes), frames=args.frames)
    report = {
        "command": " ".join(
            [sys.executable, "-m", "training.world.timing", *(argv or sys.argv[1:])]
        ),
        "machine": _machine(),
        "per_frame": measure(config),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
