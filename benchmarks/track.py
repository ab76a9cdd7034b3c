"""Benchmark: does the face tracker keep a steady, accurate crop on a moving webcam face?

Method. Each real clip (256 x 256, face-centred talking heads) is pasted into
a 640 x 480 canvas over a smooth random background, through a similarity
transform (scale and translation) that follows a KNOWN path: a Lissajous pan
with a slow zoom, then a still stretch (transform fixed and clip frozen on one
frame), then the pan again. Gaussian noise (sigma 2 grey levels, like a
webcam sensor) is added to every canvas, so the still stretch is still in
content but not bit-identical; otherwise a deterministic detector would give a
trivially zero jitter.

Reference. The true crop on each canvas frame is ViCoFace's crop of the
RetinaFace box found on the *un-moved* clip frame at its native resolution
(what ViCoFace's own preprocessing would give for that picture), mapped into
the canvas by the known transform. The figures therefore measure the tracker
(region detection at a lower resolution, smoothing lag, and for other
detectors the box adapter) against ViCoFace's own detector on the same face;
they do not measure RetinaFace's accuracy against a human-labelled face.

Figures (flat keys):
    detection_rate: frames with a fresh measurement (TRACKING) over all frames.
    center_error_rel: median over frames of |crop centre - true centre| /
        true face size ((w + h) / 2 of the reference box, in the canvas).
    center_error_rel_p95, side_error_rel (median |side - true side| / true side).
    still_jitter_px: RMS distance of the crop centre from its mean over the
        still stretch (its first second skipped as settling), in output pixels
        of the 256 crop. still_side_jitter_px: the std of the crop side there,
        in output pixels. Both are the worst of the clips; the other figures
        pool all frames of all clips.
    track_ms_p50, track_ms_mean: one tracker update on frames without a full
        search (region detection or flow, smoothing, crop warp).
    full_detect_ms_p50: the full-frame search on a 640 x 480 canvas.
    lk_flow_ms_p50: the alternative measured for between-detection tracking:
        grey conversion plus pyramidal Lucas-Kanade on 16 points.

Run: ``python -m benchmarks.track [--media DIR] [--seconds S] [--detector NAME]
[--detect-every N] [--process-every N] [--calibrate] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.common import machine_info, shared_media_dir
from pipeline.frame import Image
from stages.face.crop import crop_box_for
from stages.face.detector import BoxAdapter, DetectorConfig, FaceDetector, create_detector
from stages.face.tracker import FaceTracker, FaceTrackerConfig, choose_face
from stages.face.types import CropBox, Detection, FaceCrop, TrackStatus

CANVAS = (640, 480)
CLIPS = ("driving1.mp4", "driving2.mp4")
PORTRAITS = ("mona_lisa.png", "monroe.png", "neutral1.jpg")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CanvasPath:
    """The known placement of the clip in the canvas over time.

    Motion time pauses during the still stretch ``[still_start, still_end)``,
    so the path is continuous and the clip is frozen there. ``process_every``
    > 1 hands the tracker only every n-th canvas frame, as when the graph
    drops frames at its head behind a slow generator.
    """

    fps: float = 25.0
    process_every: int = 1
    still_start: float = 4.0
    still_end: float = 7.0
    settle: float = 1.0
    base_scale: float = 0.9
    zoom: float = 0.25
    pan: tuple[float, float] = (150.0, 80.0)
    freqs: tuple[float, float, float] = (0.23, 0.31, 0.13)

    def motion_time(self, t: float) -> float:
        if t < self.still_start:
            return t
        return self.still_start if t < self.still_end else t - (self.still_end - self.still_start)

    def is_still(self, t: float) -> bool:
        return self.still_start + self.settle <= t < self.still_end

    def transform(self, t: float, clip_side: int) -> FloatArray:
        """``(2, 3)`` similarity placing clip pixels in the canvas at time ``t``."""
        m = self.motion_time(t)
        fx, fy, fz = self.freqs
        s = self.base_scale * (1 + self.zoom * math.sin(2 * math.pi * fz * m))
        cx = CANVAS[0] / 2 + self.pan[0] * math.sin(2 * math.pi * fx * m)
        cy = CANVAS[1] / 2 + self.pan[1] * math.sin(2 * math.pi * fy * m)
        half = (clip_side - 1) / 2  # the clip's centre pixel lands on (cx, cy)
        return np.array([[s, 0.0, cx - s * half], [0.0, s, cy - s * half]])


def read_clip(path: Path, max_frames: int | None = None) -> tuple[list[Image], float]:
    """Frames ``(H, W, 3)`` uint8 RGB of a video and its frame rate."""
    import av

    frames: list[Image] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        for frame in container.decode(stream):
            frames.append(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{path} has no video frames")
    return frames, fps


def read_image(path: Path) -> Image:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def background(rng: np.random.Generator) -> Image:
    """A smooth random colour field with fine texture and no face in it."""
    coarse = rng.uniform(40, 215, size=(6, 8, 3)).astype(np.float32)
    field = np.asarray(cv2.resize(coarse, CANVAS, interpolation=cv2.INTER_CUBIC), np.float32)
    field += rng.normal(0, 6, size=field.shape).astype(np.float32)
    return np.clip(field, 0, 255).astype(np.uint8)


def compose(clip_frame: Image, affine: FloatArray, bg: Image, rng: np.random.Generator) -> Image:
    """The clip frame placed by ``affine`` over ``bg``, plus sensor-like noise."""
    canvas = bg.copy()
    cv2.warpAffine(
        clip_frame,
        affine,
        CANVAS,
        dst=canvas,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_TRANSPARENT,
    )
    noisy = canvas.astype(np.float32) + rng.normal(0, 2.0, size=canvas.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def reference_boxes(frames: Sequence[Image], detector: FaceDetector) -> list[Detection | None]:
    """The largest face on each un-moved clip frame (the benchmark's reference)."""
    return [choose_face(detector.detect(f)) for f in frames]


def true_crop(ref: Detection, affine: FloatArray, scale: float) -> CropBox:
    """ViCoFace's crop of the reference box, mapped into the canvas."""
    crop = crop_box_for(ref, scale)
    s = float(affine[0, 0])
    cx = s * crop.cx + float(affine[0, 2])
    cy = s * crop.cy + float(affine[1, 2])
    return CropBox(cx=cx, cy=cy, side=s * crop.side)


@dataclass(slots=True)
class _Log:
    """Per-frame measurements of one clip run."""

    status: list[TrackStatus]
    center_err: list[float]
    side_err: list[float]
    still: list[CropBox]
    update_ms: list[float]


def run_clip(
    frames: Sequence[Image],
    clip_fps: float,
    refs: Sequence[Detection | None],
    tracker: FaceTracker,
    path: CanvasPath,
    seconds: float,
    seed: int,
) -> _Log:
    """Track one clip through the moving canvas; per-frame figures."""
    rng = np.random.default_rng(seed)
    bg = background(rng)
    log = _Log([], [], [], [], [])
    for i in range(0, int(seconds * path.fps), path.process_every):
        t = i / path.fps
        index = min(int(path.motion_time(t) * clip_fps), len(frames) - 1)
        affine = path.transform(t, frames[index].shape[1])
        canvas = compose(frames[index], affine, bg, rng)
        searches = tracker.counters.full_searches
        start = time.perf_counter()
        result = tracker.update(canvas, t)
        if tracker.counters.full_searches == searches:
            log.update_ms.append((time.perf_counter() - start) * 1e3)
        _record(log, result, refs[index], affine, tracker.config.crop.scale, path.is_still(t))
    return log


def _record(
    log: _Log,
    result: FaceCrop,
    ref: Detection | None,
    affine: FloatArray,
    scale: float,
    still: bool,
) -> None:
    log.status.append(result.status)
    if result.crop is None or ref is None:
        return
    truth = true_crop(ref, affine, scale)
    face = truth.side / scale
    log.center_err.append(math.hypot(result.crop.cx - truth.cx, result.crop.cy - truth.cy) / face)
    log.side_err.append(abs(result.crop.side - truth.side) / truth.side)
    if still:
        log.still.append(result.crop)


def still_jitter(crops: Sequence[CropBox], size: int) -> tuple[float, float]:
    """RMS centre distance from the mean and std of the side, both in output pixels."""
    if len(crops) < 2:
        return math.nan, math.nan
    arr = np.array([[c.cx, c.cy, c.side] for c in crops])
    to_out = size / arr[:, 2].mean()
    centre = math.sqrt(float(arr[:, 0].var() + arr[:, 1].var())) * to_out
    return centre, float(arr[:, 2].std()) * to_out


def time_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds (one warm-up call first)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


def lk_flow_ms(canvas: Image, previous: Image, repeats: int = 30) -> float:
    """Cost of the optical-flow alternative: grey conversion + LK on 16 points."""
    prev_grey = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY)
    grid = np.mgrid[200:280:20, 280:360:20].reshape(2, -1).T[:, ::-1]
    points = grid.astype(np.float32).reshape(-1, 1, 2)

    def flow() -> object:
        grey = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
        return cv2.calcOpticalFlowPyrLK(prev_grey, grey, points, points.copy(), winSize=(21, 21))

    return time_ms(flow, repeats)


def _summary(logs: Sequence[_Log], crop_size: int) -> dict[str, float]:
    status = [s for log in logs for s in log.status]
    centre = np.array([e for log in logs for e in log.center_err])
    side = np.array([e for log in logs for e in log.side_err])
    jitters = [still_jitter(log.still, crop_size) for log in logs]
    update_ms = [m for log in logs for m in log.update_ms]
    return {
        "frames": float(len(status)),
        "detection_rate": sum(s is TrackStatus.TRACKING for s in status) / max(1, len(status)),
        "held_rate": sum(s is TrackStatus.HELD for s in status) / max(1, len(status)),
        "center_error_rel": float(np.median(centre)) if centre.size else math.nan,
        "center_error_rel_p95": float(np.percentile(centre, 95)) if centre.size else math.nan,
        "side_error_rel": float(np.median(side)) if side.size else math.nan,
        "still_jitter_px": max(j[0] for j in jitters),
        "still_side_jitter_px": max(j[1] for j in jitters),
        "track_ms_p50": float(np.median(update_ms)) if update_ms else math.nan,
        "track_ms_mean": float(np.mean(update_ms)) if update_ms else math.nan,
    }


def run_track_bench(
    media_dir: Path,
    *,
    seconds: float = 12.0,
    max_clip_frames: int | None = None,
    detector: str = "retinaface",
    config: FaceTrackerConfig | None = None,
    clips: Sequence[str] = CLIPS,
    seed: int = 0,
    process_every: int = 1,
) -> dict[str, float]:
    """Run the moving-canvas benchmark on the shared clips; flat figures (see module doc).

    Args:
        media_dir: folder holding the clips (``driving1.mp4``, ``driving2.mp4``).
        seconds: canvas stream length per clip at 25 fps (the still stretch
            is seconds 4-7, so use at least 8).
        max_clip_frames: decode at most this many frames of each clip.
        detector: ``"retinaface"`` or ``"blazeface"`` for the tracker; the
            reference is always RetinaFace at the clip's full resolution.
        config: tracker settings (its ``detector`` field is replaced by ``detector``).
        process_every: the tracker sees every n-th frame of the 25 fps canvas.
    """
    config = replace(config or FaceTrackerConfig(), detector=_detector_config(detector, config))
    reference = create_detector(DetectorConfig(max_side=0))
    tracked = create_detector(config.detector)
    path = CanvasPath(process_every=process_every)
    logs, canvases = [], []
    for k, name in enumerate(clips):
        frames, clip_fps = read_clip(media_dir / name, max_clip_frames)
        tracker = FaceTracker(config, tracked)
        refs = reference_boxes(_frames_used(frames, clip_fps, path, seconds), reference)
        refs = refs + [None] * (len(frames) - len(refs))
        logs.append(run_clip(frames, clip_fps, refs, tracker, path, seconds, seed + k))
        canvases.append(_sample_canvas(frames[0], path, 0.04 * k, seed))
    figures = _summary(logs, config.crop.size)
    figures["full_detect_ms_p50"] = time_ms(lambda: tracked.detect(canvases[0]), 20)
    figures["lk_flow_ms_p50"] = lk_flow_ms(canvases[-1], canvases[0])
    return figures


def _sample_canvas(frame: Image, path: CanvasPath, t: float, seed: int) -> Image:
    rng = np.random.default_rng(seed)
    return compose(frame, path.transform(t, frame.shape[1]), background(rng), rng)


def _detector_config(name: str, config: FaceTrackerConfig | None) -> DetectorConfig:
    base = config.detector if config is not None else DetectorConfig()
    if name not in ("retinaface", "blazeface"):
        raise ValueError(f"unknown detector {name!r}; use 'retinaface' or 'blazeface'")
    return replace(base, name=name)  # type: ignore[arg-type]


def _frames_used(
    frames: Sequence[Image], clip_fps: float, path: CanvasPath, seconds: float
) -> Sequence[Image]:
    last = min(int(path.motion_time(seconds) * clip_fps) + 1, len(frames))
    return frames[:last]


def calibrate_box_adapter(media_dir: Path, every: int = 5) -> dict[str, Any]:
    """Fit the BlazeFace -> RetinaFace `BoxAdapter` on the shared portraits and clips.

    Both detectors run on the same pictures (portraits, and every ``every``-th
    clip frame); RetinaFace at full resolution is the target. Returns the
    adapter, the number of pairs and the median residual centre error (over
    the RetinaFace face size) before and after adapting.
    """
    retina = create_detector(DetectorConfig(max_side=0))
    blaze = create_detector(DetectorConfig(name="blazeface", adapt_boxes=False))
    pictures = [read_image(media_dir / p) for p in PORTRAITS if (media_dir / p).exists()]
    for clip in CLIPS:
        if (media_dir / clip).exists():
            pictures += read_clip(media_dir / clip)[0][::every]
    source, target = [], []
    for picture in pictures:
        r, b = choose_face(retina.detect(picture)), choose_face(blaze.detect(picture))
        if r is not None and b is not None:
            source.append(b)
            target.append(r)
    adapter = BoxAdapter.fit(source, target)
    adapted = [adapter.apply(d) for d in source]
    return {
        "adapter": asdict(adapter),
        "pairs": len(source),
        "center_error_rel_raw": _median_center_error(source, target),
        "center_error_rel_adapted": _median_center_error(adapted, target),
    }


def _median_center_error(boxes: Sequence[Detection], refs: Sequence[Detection]) -> float:
    errors = [
        math.hypot(b.center[0] - r.center[0], b.center[1] - r.center[1]) / r.size
        for b, r in zip(boxes, refs, strict=True)
    ]
    return float(np.median(errors))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--media", type=Path, default=shared_media_dir())
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--detector", default="retinaface", choices=["retinaface", "blazeface"])
    parser.add_argument(
        "--detect-every",
        type=int,
        default=1,
        help="region detection every n-th frame, flow between",
    )
    parser.add_argument(
        "--process-every", type=int, default=1, help="the tracker sees every n-th canvas frame"
    )
    parser.add_argument("--calibrate", action="store_true", help="fit the BlazeFace box adapter")
    parser.add_argument("--out", type=Path, help="write the JSON report here as well")
    args = parser.parse_args(argv)
    if not args.media.is_dir():
        parser.error(f"media folder {args.media} not found; pass --media DIR")
    if args.calibrate:
        figures: dict[str, Any] = calibrate_box_adapter(args.media)
    else:
        config = FaceTrackerConfig(detect_every=args.detect_every)
        figures = run_track_bench(
            args.media,
            seconds=args.seconds,
            detector=args.detector,
            config=config,
            process_every=args.process_every,
        )
    report = {
        "command": " ".join(sys.argv),
        "machine": {**machine_info(), "opencv": cv2.__version__},
        "figures": figures,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
