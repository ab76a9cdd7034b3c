"""Option helpers every command shares: value parsers and deprecated spellings.

Each option that more than one command takes is declared once, here or in
`pipeline.app.model_options`; commands call these functions instead of
repeating ``add_argument``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

_SIZE = re.compile(r"^(\d+)x(\d+)$")


def size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> ``(width, height)``; an argparse ``type``."""
    match = _SIZE.match(text)
    if match is None or 0 in (int(match.group(1)), int(match.group(2))):
        raise argparse.ArgumentTypeError(f"{text!r}: write WIDTHxHEIGHT, e.g. 640x480")
    return int(match.group(1)), int(match.group(2))


_N = TypeVar("_N", int, float)


def _number(text: str, kind: type[_N], lowest: _N, inclusive: bool) -> _N:
    """``text`` as a ``kind`` at least ``lowest`` (above it unless ``inclusive``)."""
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value < lowest or (value == lowest and not inclusive):
        raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {lowest:g}, "
                                         f"got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1; an argparse ``type``."""
    return _number(text, int, 1, inclusive=True)


def positive_float(text: str) -> float:
    """A number > 0; an argparse ``type``."""
    return _number(text, float, 0.0, inclusive=False)


def non_negative_int(text: str) -> int:
    """An integer >= 0; an argparse ``type``."""
    return _number(text, int, 0, inclusive=True)


def non_negative_float(text: str) -> float:
    """A number >= 0; an argparse ``type``."""
    return _number(text, float, 0.0, inclusive=True)


def deprecation(old: str, new: str) -> None:
    """Tell the user, once per use, that ``old`` goes away in the next release."""
    print(f"vicocam: {old} is deprecated and goes away in the next release; use {new}",
          file=sys.stderr)


class DeprecatedAlias(argparse.Action):
    """An old option spelling that still works: stores into the new option's ``dest``
    (converted by ``convert``, e.g. a camera index into ``camera:N``) and says so."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str,
                 convert: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)
        self.new = new
        self.convert = convert

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        deprecation(str(option_string), self.new)
        setattr(namespace, self.dest, values if self.convert is None else self.convert(values))


def add_deprecated(parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str,
                   new: str, dest: str, convert: Any = None, *, flag: bool = False) -> None:
    """Keep ``old`` working as a hidden alias of the option ``new`` (stored in ``dest``);
    ``flag``: the old option takes no value (``convert`` then receives ``[]``)."""
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, new=new, convert=convert,
                        default=argparse.SUPPRESS, nargs=0 if flag else None)


def choices(values: Any) -> list[str]:
    """An enum's values as argparse choices (a typo then lists them)."""
    return [str(value) for value in values]


def add_in_flight_options(parser: argparse.ArgumentParser) -> None:
    """``--max-in-flight N``, ``--adaptive-in-flight`` (the head limiter), ``--stage-threads``."""
    parser.add_argument("--max-in-flight", type=positive_int, default=None, metavar="N",
                        help="frames admitted and not yet out, the adaptive limit's cap "
                             "(default: one per stage thread plus one, at most one per core "
                             "plus one)")
    add_adaptive_option(parser, "live runs move the limit between 1 and --max-in-flight, to the "
                                "fewest frames that keep the frame rate (default); "
                                "--no-adaptive-in-flight keeps --max-in-flight fixed")
    parser.add_argument("--stage-threads", type=positive_int, default=None, metavar="N",
                        help="worker threads the compute stages are dealt into, consecutive "
                             "stages sharing one (default: one per core; a number at or above "
                             "the stages gives each its own)")


def add_adaptive_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--adaptive-in-flight`` / ``--no-adaptive-in-flight``: the head limit follows what
    pays (`pipeline.in_flight`, the default) or stays fixed."""
    parser.add_argument("--adaptive-in-flight", action=argparse.BooleanOptionalAction,
                        default=True, help=help)


def add_encoder_option(parser: argparse.ArgumentParser) -> None:
    """``--encode-in sink|aiortc``: where the returned video's VP8 frames are encoded."""
    parser.add_argument("--encode-in", choices=["sink", "aiortc"], default="sink",
                        help="where the returned video is encoded (VP8): sink (default) in "
                             "each session's last stage, timed and limited with the others; "
                             "aiortc in its executor shared by all sessions, as before")


def add_json_option(parser: argparse.ArgumentParser, what: str = "the figures") -> None:
    parser.add_argument("--json", type=Path, default=None, help=f"write {what} as JSON here")


def command_line(fallback: str) -> str:
    """The command as typed (``vicocam ...``), for a JSON's provenance; ``fallback`` if bare."""
    return "vicocam " + shlex.join(sys.argv[1:]) if sys.argv[1:] else fallback


def write_text(path: Path | None, text: str) -> None:
    """Write ``text`` (plus a newline) to ``path``, making its folder; nothing for ``None``."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def print_status(line: str) -> None:
    """The live one-line status of a run, redrawn in place on stderr."""
    print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
