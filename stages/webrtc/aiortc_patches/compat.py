"""Which aiortc the patches fit: its version range and the internals they reach into.

Each patch module lists the pieces of aiortc it relies on as `Internal`
entries; `check_aiortc` verifies the installed version and every entry
before a patch is installed, so an aiortc that moved one fails at session
start with `UnsupportedAiortcError` (what is installed, what is supported,
what to do) rather than with an ``AttributeError`` in the middle of a call.
This module imports aiortc only when a check runs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from pipeline.errors import UserError

SUPPORTED = ">=1.9,<2"
"""The aiortc versions the patches support (pyproject's ``aiortc>=1.9,<2``)."""

LOWEST = (1, 9)
"""The first supported (major, minor), inclusive."""

BELOW = (2, 0)
"""The first unsupported (major, minor): the range stops before it."""

WRITTEN_AGAINST = "1.16.0"
"""The aiortc version the patches were written and measured against."""

_RELEASE = re.compile(r"^(\d+)\.(\d+)")


class UnsupportedAiortcError(UserError):
    """The installed aiortc is outside `SUPPORTED` or lacks an internal a patch replaces.

    Attributes:
        installed: the installed aiortc's version string.
        problem: what is wrong with it, for the message.
    """

    def __init__(self, installed: str, problem: str) -> None:
        self.installed = installed
        self.problem = problem
        super().__init__(
            f"aiortc {installed} cannot be used by vicocam's aiortc patches: {problem}. "
            f"Supported: aiortc{SUPPORTED} (written against {WRITTEN_AGAINST}); install a "
            f"supported aiortc: pip install 'aiortc{SUPPORTED}'"
        )


@dataclass(frozen=True, slots=True)
class Internal:
    """One piece of aiortc a patch relies on.

    Attributes:
        module: the aiortc module that holds it (``"aiortc.jitterbuffer"``).
        path: a dotted attribute path inside ``module`` (``"JitterBuffer.add"``).
        assigns: when not empty, an instance attribute that ``path`` (a
            constructor) must name in its code, mangled as Python stores
            private names (``"_RTCRtpReceiver__jitter_buffer"``): patches swap
            such attributes on live objects, so the class alone cannot show them.
    """

    module: str
    path: str
    assigns: str = ""

    def __str__(self) -> str:
        where = f"{self.module}.{self.path}"
        return f"{where} (setting {self.assigns})" if self.assigns else where

    def present(self) -> bool:
        """Whether the installed aiortc has this piece."""
        try:
            target = _resolve(self.module, self.path)
        except (ImportError, AttributeError):
            return False
        return not self.assigns or self.assigns in _code_names(target)


def _resolve(module: str, path: str) -> Any:
    target: Any = importlib.import_module(module)
    for name in path.split("."):
        target = getattr(target, name)
    return target


def _code_names(function: Any) -> tuple[str, ...]:
    code = getattr(function, "__code__", None)
    return tuple(code.co_names) if code is not None else ()


def installed_version() -> str:
    """The installed aiortc's ``__version__``; its package's version if it cannot be imported."""
    try:
        import aiortc
    except ImportError:
        return _distribution_version()
    return str(getattr(aiortc, "__version__", "(version unknown)"))


def _distribution_version() -> str:
    try:
        return metadata.version("aiortc")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def version_supported(version: str) -> bool:
    """Whether ``version`` (``"1.16.0"``) falls in `SUPPORTED`."""
    match = _RELEASE.match(version)
    if match is None:
        return False
    release = (int(match[1]), int(match[2]))
    return LOWEST <= release < BELOW


def check_aiortc(internals: Iterable[Internal]) -> None:
    """Raise `UnsupportedAiortcError` unless aiortc is supported and has every internal."""
    version = installed_version()
    if not version_supported(version):
        raise UnsupportedAiortcError(version, "this version is outside the supported range")
    missing = [str(internal) for internal in internals if not internal.present()]
    if missing:
        raise UnsupportedAiortcError(
            version, f"it lacks {', '.join(missing)}, which the patches reach into")
