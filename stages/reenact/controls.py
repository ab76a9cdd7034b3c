"""Keyboard control of a running avatar: one key, one settings change.

`LiveControls` maps a key to a change of the `LiveSettings` box (or a stop
request) and says what it did; it knows nothing about terminals, so a test
or another front end can drive it. `KeyReader` reads single key presses
from a terminal on a small daemon thread: only when stdin is a TTY, with the
terminal in cbreak mode (keys arrive unbuffered, Ctrl-C still interrupts),
and the terminal's previous mode restored on exit, also after errors.

Keys: ``r`` reset the relative reference, ``+``/``-`` motion strength,
``m`` motion mode, ``o`` output mode, ``n`` next avatar, ``q`` quit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TextIO

from networks.motion import MotionMode
from stages.reenact.live_settings import (
    STRENGTH_STEP,
    AvatarKey,
    LiveSettingsBox,
    change_strength,
    next_avatar,
    next_mode,
    next_output,
    reset_reference,
)

log = logging.getLogger(__name__)

KEY_HELP = "keys: r reset reference, +/- strength, m mode, o output, n next avatar, q quit"


class LiveControls:
    """Applies key presses to a settings box (see the module docstring).

    Args:
        settings: the box the avatar path reads.
        family_mode: the model's default motion mode (where ``m`` starts cycling).
        avatars: the avatars ``n`` cycles through.
        request_stop: called for ``q`` (e.g. `pipeline.runtime.Pipeline.request_stop`).
    """

    def __init__(
        self,
        settings: LiveSettingsBox,
        family_mode: MotionMode,
        avatars: Sequence[AvatarKey] = (),
        request_stop: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.family_mode = family_mode
        self.avatars = tuple(avatars)
        self.request_stop = request_stop
        self._actions: dict[str, Callable[[], str]] = {
            "r": self._reset,
            "+": self._stronger,
            "=": self._stronger,
            "-": self._weaker,
            "_": self._weaker,
            "m": self._mode,
            "o": self._output,
            "n": self._avatar,
            "q": self._quit,
        }

    def handle(self, key: str) -> str | None:
        """Apply ``key``; return a one-line description, or ``None`` for an unknown key."""
        action = self._actions.get(key.lower() if key.isalpha() else key)
        return None if action is None else action()

    def _reset(self) -> str:
        reset_reference(self.settings)
        return "reference reset: the next frame is the new neutral pose"

    def _stronger(self) -> str:
        return f"strength {change_strength(self.settings, STRENGTH_STEP).strength:.1f}"

    def _weaker(self) -> str:
        return f"strength {change_strength(self.settings, -STRENGTH_STEP).strength:.1f}"

    def _mode(self) -> str:
        mode = next_mode(self.settings, self.family_mode).mode
        return f"motion mode {mode}"

    def _output(self) -> str:
        return f"output {next_output(self.settings).output}"

    def _avatar(self) -> str:
        if len(self.avatars) < 2:
            return "only one avatar: give several with --avatar to switch"
        avatar = next_avatar(self.settings, self.avatars).avatar
        return f"avatar {avatar.source if avatar else '?'} (preparing...)"

    def _quit(self) -> str:
        if self.request_stop is not None:
            self.request_stop()
        return "stopping"


class KeyReader:
    """Reads key presses from a terminal and hands each to ``on_key`` (a context manager).

    Inactive (reads nothing, changes nothing) when ``stream`` is not a TTY
    or the platform has no ``termios``. ``on_key`` runs on the reader thread;
    its return value, when not ``None``, is printed to ``echo``.
    """

    def __init__(
        self,
        on_key: Callable[[str], str | None],
        stream: TextIO | None = None,
        echo: TextIO | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self.on_key = on_key
        self.stream = stream if stream is not None else sys.stdin
        self.echo = echo if echo is not None else sys.stderr
        self.poll_s = poll_s
        self._saved: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> KeyReader:
        if not _is_tty(self.stream):
            return self
        try:
            import termios
            import tty
        except ImportError:
            log.info("no termios on this platform: keyboard controls are off")
            return self
        fd = self.stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._loop, name="vicocam-keys", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def _loop(self) -> None:
        fd = self.stream.fileno()
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], self.poll_s)
            if not ready:
                continue
            data = os.read(fd, 32)
            if not data:
                return  # end of input: nothing more to read
            for key in data.decode(errors="ignore"):
                self._dispatch(key)

    def _dispatch(self, key: str) -> None:
        try:
            message = self.on_key(key)
        except Exception:
            log.exception("key %r failed", key)
            return
        if message:
            print(f"\r\n[{message}]", file=self.echo, flush=True)


def _is_tty(stream: TextIO) -> bool:
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return bool(stream.isatty())
    return False
