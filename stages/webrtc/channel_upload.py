"""An avatar picture sent on a session's control channel: a header, then binary chunks.

Through a cluster's gateway no HTTP request reaches the process that holds a
session, so the page sends its picture on the session's own data channel::

    {"type": "avatar-upload", "id": 4, "name": "me.jpg", "bytes": 52311}
    <binary message of <= 16 KiB> <binary message> ...   adding up to "bytes"

`read_header` checks the header (the size against the avatar byte limit,
before any chunk is taken) and `ChunkedUpload` collects the chunks of the one
upload a channel may have at a time, refusing a chunk that is too large or
goes past the announced size. Memory is bounded by the limit: nothing beyond
the announced size is ever kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

MAX_CHUNK_BYTES = 16 * 1024
"""Largest binary message of an upload (what every browser's data channel sends whole)."""
MAX_NAME_CHARS = 200
"""An upload's name is cut to this length (as the HTTP route cuts ``X-Filename``)."""
UPLOAD_FORM = '{"type": "avatar-upload", "name": "me.jpg", "bytes": <size>}'


def read_header(message: dict[str, Any], max_bytes: int) -> tuple[str, int]:
    """``(name, size)`` of an ``avatar-upload`` header; `ValueError` saying what is wrong."""
    name = message.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"an avatar upload needs a file name: send {UPLOAD_FORM}")
    size = message.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f'"bytes" must be the picture\'s size, a whole number > 0: send '
                         f"{UPLOAD_FORM}")
    if size > max_bytes:
        raise ValueError(f"the picture is {size / 1e6:.1f} MB; the limit is "
                         f"{max_bytes / 1e6:.1f} MB")
    return name[:MAX_NAME_CHARS], size


class ChunkedUpload:
    """The bytes of one upload as its chunks arrive.

    ``request_id`` is the header's ``id`` (the reply carries it); `add` takes
    one chunk and says whether the picture is complete; ``data`` is then its
    bytes. `idle_s` tells how long since the last chunk (a page that stopped
    half-way holds the channel's one upload until it is given up).
    """

    def __init__(self, request_id: Any, name: str, size: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.request_id = request_id
        self.name = name
        self.size = size
        self._clock = clock
        self._data = bytearray()
        self._last = clock()

    def add(self, chunk: bytes) -> bool:
        """Append ``chunk``; ``True`` once all bytes are in. `ValueError` for a bad chunk."""
        if len(chunk) > MAX_CHUNK_BYTES:
            raise ValueError(f"an upload chunk of {len(chunk)} bytes is too large; send "
                             f"binary messages of at most {MAX_CHUNK_BYTES} bytes")
        if len(self._data) + len(chunk) > self.size:
            raise ValueError(f"the upload sent more than the {self.size} bytes it announced; "
                             "it was dropped")
        self._data += chunk
        self._last = self._clock()
        return len(self._data) == self.size

    @property
    def data(self) -> bytes:
        return bytes(self._data)

    @property
    def received(self) -> int:
        return len(self._data)

    def idle_s(self) -> float:
        return self._clock() - self._last
