"""The ``vicocam`` command line: the entry point of the application layer.

Thin by design: each subcommand lives in its own module under
`pipeline.app.commands` that adds its parser and a handler; handlers build
typed configs from the arguments and call library code. Command modules
import nothing heavy at module level, so ``vicocam --help`` is instant and
works without optional packages.

A handler raises `UserError` for anything the user can fix (a missing file,
an unknown sink); ``main`` prints it as one clear line and exits with 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pipeline.errors import UserError

COMMANDS: tuple[str, ...] = (
    "run", "serve", "client", "devices", "doctor", "model", "selfcheck", "engines",
    "train", "train_aux", "eval", "bench",
)
"""Modules of `pipeline.app.commands`, in the order ``--help`` lists them. Each exposes
``register(subparsers) -> None`` and sets ``handler=fn`` with ``fn(args) -> int``."""

DESCRIPTION = """\
vicocam: appear in a video call as an animated portrait.

Common tasks:
  vicocam run                          built-in demo into out/vicocam.mp4
  vicocam run --avatar me.jpg --driver camera:0 --sink virtualcam
  vicocam serve                        browser page + WebRTC on http://127.0.0.1:8080
  vicocam run --source clip.mp4 --sink out.mp4 --mode offline
  vicocam bench overload --json out/overload.json
Use 'vicocam COMMAND --help' for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicocam",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"pipeline.app.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse said what is wrong (exit 2)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"vicocam: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vicocam: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
