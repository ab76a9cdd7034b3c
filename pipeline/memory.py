"""The C allocator of a long-running process: fewer arenas, big buffers mapped, free pages returned.

A server whose sessions come and go, each with threads that allocate video
frames of about a megabyte, grows under glibc's defaults though nothing
leaks (`vicocam bench soak`): every thread that allocates may get an arena
of its own (up to eight per core), each keeps the pages its frames freed,
and after the first large buffer is freed glibc raises its mmap threshold so
later frames come from those arenas instead of being mapped and unmapped.

`tune_allocator` sets, once at the start of a command that runs for long:

* at most `ARENAS` arenas (``M_ARENA_MAX``);
* a fixed mmap threshold of `MMAP_THRESHOLD` bytes (``M_MMAP_THRESHOLD``, which
  also stops the dynamic one), so frame-sized buffers go back to the system
  the moment they are freed.

`release_free_memory` hands the free pages every arena keeps back to the
system (``malloc_trim``); the WebRTC server calls it after a session closed.

Both do nothing where the C library is not glibc, and `tune_allocator` leaves
alone what the user chose through glibc's own variables (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_``, or the tunables of ``GLIBC_TUNABLES``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Mapping
from typing import Any

ARENAS = 2
"""Arenas at most: the main one and one for all other threads' contention."""
MMAP_THRESHOLD = 256 * 1024
"""Allocations from this size on are mapped on their own and unmapped when freed."""

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
"""``mallopt`` parameters, from glibc's ``malloc.h``."""

_USER_CHOICES = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


@functools.cache
def _glibc() -> Any | None:
    """The C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else ``None``."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Set the arena limit and the mmap threshold (see the module); what was set.

    Empty where the C library is not glibc or the user set glibc's own
    variables. Call it before the threads it should cover start: an arena
    made before stays.
    """
    libc = _glibc()
    if libc is None or any(name in environ for name in _USER_CHOICES):
        return {}
    chosen = {"arena_max": (_M_ARENA_MAX, ARENAS),
              "mmap_threshold": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD)}
    return {name: value for name, (param, value) in chosen.items()
            if libc.mallopt(param, value) == 1}


def release_free_memory() -> bool:
    """Give the allocator's free pages back to the system; ``False`` without glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
