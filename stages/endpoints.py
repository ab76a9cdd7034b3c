"""One registry of the endpoints users name: where frames come from, where they go.

Sources:
    ``pattern[:WxH@FPS]``  a moving test picture with the frame index stamped in it;
    ``person[:N]``         the N-th held-out person of the synthetic world, talking;
    ``camera[:N|PATH]``    a camera (index or device path);
    a picture file         repeated at ``fps`` (any ending in `IMAGE_EXTENSIONS`);
    a video file           any file FFmpeg reads.
Sinks:
    ``null``               counts frames;
    ``virtualcam[:DEVICE]`` the virtual camera Zoom/Meet/Teams select;
    a video file path      ending in ``.mp4``, ``.mkv`` or ``.mov``.

``vicocam run``, ``serve``, ``client``, ``devices`` and ``doctor`` all resolve
endpoints here; `endpoint_report` is what ``devices`` and ``doctor`` print.
Every factory imports its package only when called, so naming an endpoint
never imports a camera or virtual-camera library that is not used.
"""

from __future__ import annotations

import enum
import platform
from dataclasses import replace
from pathlib import Path

from pipeline.stage import Source, Stage
from stages.io.factory import (
    SinkFactory,
    SinkOptions,
    SourceFactory,
    SourceOptions,
    default_sink_registry,
    default_source_registry,
)
from stages.io.factory import open_sink as _open_sink
from stages.io.factory import open_source as _open_source
from stages.io.image import IMAGE_EXTENSIONS


class SourceKind(enum.StrEnum):
    """What a source spec names, which decides how long a run lasts by default.

    DEVICE: a camera: runs until stopped.
    GENERATED: ``pattern`` or ``person``: endless.
    PICTURE: a still picture repeated: endless.
    FILE: a video file: ends with the file (unless looped).
    """

    DEVICE = "device"
    GENERATED = "generated"
    PICTURE = "picture"
    FILE = "file"


def source_kind(spec: str) -> SourceKind:
    """The `SourceKind` of ``spec`` (see `open_source` for the forms)."""
    name = spec.partition(":")[0]
    if name == "camera":
        return SourceKind.DEVICE
    if name in ("pattern", "person"):
        return SourceKind.GENERATED
    if Path(spec).suffix.lower() in IMAGE_EXTENSIONS:
        return SourceKind.PICTURE
    return SourceKind.FILE


def is_endless(spec: str, loop: bool = False) -> bool:
    """Whether the source never ends by itself (a looped file never does)."""
    return loop or source_kind(spec) is not SourceKind.FILE


def _person(arg: str, options: SourceOptions) -> Source:
    from stages.reenact.person import PersonConfig, PersonSource

    config = PersonConfig(identity=_index(arg, "person", PersonConfig().identity),
                          fps=options.fps or 30, frames=options.frames)
    if options.size is not None:
        config = replace(config, width=options.size[0], height=options.size[1])
    return PersonSource(config)


def _index(arg: str, name: str, default: int) -> int:
    if not arg:
        return default
    if not arg.isdigit():
        raise ValueError(f"{name}:{arg}: write {name}:N with N a whole number, e.g. {name}:1")
    return int(arg)


def _camera(arg: str, options: SourceOptions) -> Source:
    from stages.camera import CameraConfig, CameraSource

    device: int | str = int(arg) if arg.isdigit() else (arg or 0)
    default = CameraConfig()
    width, height = options.size or (default.width, default.height)
    return CameraSource(CameraConfig(device=device, width=width, height=height,
                                     fps=float(options.fps or 30)))


def _virtualcam(arg: str, options: SinkOptions) -> Stage:
    from stages.virtualcam import VirtualCamConfig, VirtualCamSink

    default = VirtualCamConfig()
    width, height = options.size or (default.width, default.height)
    return VirtualCamSink(VirtualCamConfig(
        width=width, height=height, fps=float(options.fps), device=arg or None,
        backend=options.virtualcam_backend, pacing=options.pacing))


def source_factories() -> dict[str, SourceFactory]:
    """A new dict of every named source: ``pattern``, ``person``, ``camera``."""
    return {**default_source_registry(), "person": _person, "camera": _camera}


def sink_factories() -> dict[str, SinkFactory]:
    """A new dict of every named sink: ``null``, ``virtualcam``."""
    return {**default_sink_registry(), "virtualcam": _virtualcam}


def open_source(spec: str, options: SourceOptions | None = None) -> Source:
    """Build (not yet open) the source ``spec`` names; `ValueError` lists the forms."""
    return _open_source(spec, options, source_factories())


def open_sink(spec: str, options: SinkOptions | None = None) -> Stage:
    """Build (not yet start) the sink ``spec`` names; `ValueError` lists the forms."""
    return _open_sink(spec, options, sink_factories())


def endpoint_report() -> list[str]:
    """What ``vicocam devices`` (and ``doctor``) print: cameras and virtual cameras."""
    from stages.camera import list_cameras

    try:
        cameras = list_cameras()
    except Exception as exc:  # a device probe must never break the report
        return [f"Cameras: listing failed ({exc!r})", *_virtual_lines([])]
    lines = ["Cameras (use --driver camera:N):"]
    real = [c for c in cameras if not c.virtual]
    lines += [f"  {c.device:<3} {c.name}" + (f"  ({c.path})" if c.path else "") for c in real]
    if not real:
        lines.append("  none found (is a camera connected, and may this user open it?)")
    return lines + _virtual_lines([f"{c.path or c.device}  {c.name}" for c in cameras
                                   if c.virtual])


def _virtual_lines(devices: list[str]) -> list[str]:
    from stages.virtualcam import MODPROBE_LINE, PLATFORM_BACKENDS, available_backends

    lines = ["Virtual cameras (--sink virtualcam):", *(f"  {d}" for d in devices)]
    backends = available_backends()
    shown = ", ".join(backends) if backends else "none (pip install 'vicocam[virtualcam]')"
    lines.append(f"  backends: {shown}")
    if platform.system() == "Linux" and not devices:
        lines.append(f"  no v4l2loopback device; create one with: {MODPROBE_LINE}")
    elif platform.system() != "Linux":
        expected = ", ".join(PLATFORM_BACKENDS.get(platform.system(), ()))
        lines.append(f"  (this platform uses: {expected or 'no known backend'})")
    return lines
