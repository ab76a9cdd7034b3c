"""Out-of-band control: live settings swapped atomically.

Settings never travel through a data edge (a leaky edge could drop them).
A `SettingsBox` holds one frozen dataclass; writers replace it whole, readers
take a snapshot at the start of a frame, so a stage never sees half an update
and a change takes effect on the next frame every stage processes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SettingsBox(Generic[T]):
    """A thread-safe holder for an immutable settings object.

    ``version`` increases by one on every change, so a stage can notice a
    one-shot request (e.g. "reset the reference") by comparing versions or a
    counter field of the settings.
    """

    def __init__(self, initial: T) -> None:
        if not dataclasses.is_dataclass(initial) or isinstance(initial, type):
            raise TypeError("SettingsBox holds a dataclass instance")
        self._value = initial
        self._version = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[T], None]] = []

    def get(self) -> T:
        """The current settings (a reference read is atomic in CPython)."""
        return self._value

    @property
    def version(self) -> int:
        return self._version

    def update(self, **changes: Any) -> T:
        """Replace the settings with a copy carrying ``changes``; return it.

        Unknown field names raise `TypeError` (from `dataclasses.replace`).
        """
        with self._lock:
            new = dataclasses.replace(self._value, **changes)  # type: ignore[type-var]
            self._value = new
            self._version += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(new)
        return new

    def set(self, value: T) -> None:
        with self._lock:
            self._value = value
            self._version += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(value)

    def subscribe(self, listener: Callable[[T], None]) -> Callable[[], None]:
        """Call ``listener(new)`` after each change; returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe
