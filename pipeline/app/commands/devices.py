"""``vicocam devices``: the cameras and virtual-camera backends of this machine."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "devices", help="list cameras and virtual-camera backends",
        description="List the cameras vicocam can read and the virtual cameras it can write.")
    parser.set_defaults(handler=handle_devices)


def handle_devices(args: argparse.Namespace) -> int:
    from stages.endpoints import endpoint_report

    print("\n".join(endpoint_report()))
    return 0
