"""Offline file-to-file rendering loses nothing and keeps order, checked from pixels.

A clip with the frame index stamped into every picture is written to an
H.264 file, rendered offline through a slow stage into a second file, and the
second file is decoded: the frame count and the order come from reading the
stamps back, not from the runtime's own counters.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.runtime import WaitStage
from pipeline.runtime import Pipeline, RunMode, RuntimeConfig
from pipeline.stage import Source
from stages.io import (
    PatternConfig,
    PatternSource,
    VideoFileSink,
    VideoFileSinkConfig,
    VideoFileSource,
    VideoFileSourceConfig,
)
from stages.stamp import read_stamp

_OFFLINE = RuntimeConfig(mode=RunMode.OFFLINE)
_SIZE = (320, 240)


def run_lossless(frames: int, stage_ms: float, workdir: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        clip, rendered = Path(tmp) / "clip.mp4", Path(tmp) / "rendered.mp4"
        synthetic = PatternSource(
            PatternConfig(width=_SIZE[0], height=_SIZE[1], fps=30, frames=frames)
        )
        _render(synthetic, clip, [])
        report = _render(
            VideoFileSource(VideoFileSourceConfig(clip)), rendered, [WaitStage("slow", stage_ms)]
        )
        stamps = _read_stamps(rendered)
    m = report.metrics
    return {
        "frames_in": m.frames_in,
        "frames_out": m.frames_out,
        "frames_dropped": m.frames_dropped,
        "frames_in_file": len(stamps),
        "stamps_unreadable": sum(s is None for s in stamps),
        "order_preserved": stamps == list(range(frames)),
        "stage_ms": stage_ms,
        "render_fps": m.fps_out(),
    }


def _render(source: Source, path: Path, stages: list[WaitStage]) -> Any:
    sink = VideoFileSink(VideoFileSinkConfig(path, fps=30, crf=18))
    return asyncio.run(Pipeline(source, [*stages, sink], _OFFLINE).run())


def _read_stamps(path: Path) -> list[int | None]:
    source = VideoFileSource(VideoFileSourceConfig(path))
    source.open()
    stamps = []
    try:
        while (got := source.read()) is not None:
            stamps.append(read_stamp(got.image))
    finally:
        source.close()
    return stamps
