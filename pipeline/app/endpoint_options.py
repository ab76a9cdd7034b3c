"""Endpoint options shared by commands: sources, sinks, avatars, how long a run lasts.

The endpoints themselves are `stages.endpoints`; this module declares the
options that name them and keeps the old spellings working for one release:
``synthetic[:N]`` as a driver or avatar is now ``person[:N]``, and
``synthetic[:WxH@FPS]`` as a frames-only source is now ``pattern[:WxH@FPS]``.
"""

from __future__ import annotations

import argparse

from pipeline.app.options import choices, deprecation, positive_float, positive_int

DEFAULT_SINK = "out/vicocam.mp4"
"""Where ``vicocam run`` writes when no sink is given."""

DEFAULT_SECONDS = 10.0
"""How long a run from a source that never ends by itself lasts when neither
``--seconds`` nor ``--frames`` is given."""


def renamed_endpoint(text: str, new_name: str, flag: str) -> str:
    """``text`` with the old name ``synthetic`` replaced by ``new_name`` (and a deprecation)."""
    name, sep, arg = text.partition(":")
    if name != "synthetic":
        return text
    renamed = f"{new_name}{sep}{arg}"
    deprecation(f"{flag} {text}", f"{flag} {renamed}")
    return renamed


def driver_spec(text: str) -> str:
    """An argparse ``type`` for a driver source (``synthetic`` -> ``person``)."""
    return renamed_endpoint(text, "person", "--driver")


def source_spec(text: str) -> str:
    """An argparse ``type`` for a frames-only source (``synthetic`` -> ``pattern``)."""
    return renamed_endpoint(text, "pattern", "--source")


def add_sink_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--sink", default=default,
                        help=f"a .mp4/.mkv/.mov path, null, or virtualcam[:DEVICE] ({default})")


def add_run_length_options(parser: argparse.ArgumentParser) -> None:
    """``--seconds``, ``--frames``, ``--fps`` and ``--loop``."""
    parser.add_argument("--seconds", type=positive_float, default=None,
                        help="stop after this long (default: 10 s for generated sources, "
                             "pictures and loops; a camera runs until q or Ctrl-C)")
    parser.add_argument("--frames", type=positive_int, default=None,
                        help="stop after this many frames")
    parser.add_argument("--fps", type=positive_float, default=None,
                        help="rate of generated and picture sources")
    parser.add_argument("--loop", action="store_true", help="replay a video file at its end")


def avatar_spec(text: str) -> str:
    """An argparse ``type`` for an avatar (``synthetic:N`` -> ``person:N``)."""
    return renamed_endpoint(text, "person", "--avatar")


def add_avatar_options(parser: argparse.ArgumentParser, *, repeatable: bool,
                       output_mode: str, output_help: str) -> None:
    """``--avatar`` (repeatable for ``run``) and ``--output-mode`` with its default."""
    from stages.reenact.output_mode import OutputMode

    parser.add_argument("--avatar", action="append" if repeatable else "store",
                        default=[] if repeatable else None, metavar="PICTURE", type=avatar_spec,
                        help="portrait to animate" + (" (repeatable; 'n' switches)" if repeatable
                                                      else ", every session starts with it")
                             + "; person:N is a held-out synthetic person (default person:1)")
    parser.add_argument("--output-mode", choices=choices(OutputMode), default=output_mode,
                        help=output_help)
