"""``vicocam devices``: the cameras and virtual-camera backends of this machine."""

from __future__ import annotations

import argparse
import platform


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "devices", help="list cameras and virtual-camera backends",
        description="List the cameras vicocam can read and the virtual cameras it can write.")
    parser.set_defaults(handler=handle_devices)


def handle_devices(args: argparse.Namespace) -> int:
    print("\n".join(device_report()))
    return 0


def device_report() -> list[str]:
    """The lines ``vicocam devices`` prints."""
    from stages.camera import list_cameras
    from stages.virtualcam import MODPROBE_LINE, PLATFORM_BACKENDS, available_backends

    cameras = list_cameras()
    lines = ["Cameras (use --camera N / --driver camera:N):"]
    lines += [f"  {c.device:<3} {c.name}" + (f"  ({c.path})" if c.path else "")
              for c in cameras if not c.virtual]
    if not any(not c.virtual for c in cameras):
        lines.append("  none found (is a camera connected, and may this user open it?)")
    lines.append("Virtual cameras (output):")
    virtual = [c for c in cameras if c.virtual]
    lines += [f"  {c.path or c.device}  {c.name}" for c in virtual]
    backends = available_backends()
    shown = ", ".join(backends) if backends else "none (pip install 'vicocam[virtualcam]')"
    lines.append(f"  backends: {shown}")
    if platform.system() == "Linux" and not virtual:
        lines.append(f"  no v4l2loopback device; create one with: {MODPROBE_LINE}")
    elif platform.system() != "Linux":
        expected = ", ".join(PLATFORM_BACKENDS.get(platform.system(), ()))
        lines.append(f"  (this platform uses: {expected or 'no known backend'})")
    return lines
