"""Validation of uploaded avatars; a session's settings are the avatar path's `LiveSettings`.

Each session holds a `stages.reenact.live_settings.LiveSettings` in a
`SettingsBox` (the same type the terminal keys of ``vicocam run`` write): the
HTTP handlers replace it whole, the session's stages take one snapshot per
frame. A validated upload becomes an in-memory `AvatarKey` named by the
digest of its bytes, so the same picture is recognised and prepared once.

Uploads are untrusted: `decode_avatar` rejects anything over the byte limit,
anything that is not a PNG or JPEG, and pictures whose header declares a size
outside the limits *before* decoding, so a small file that would inflate to
gigabytes (a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from stages.reenact.live_settings import AvatarKey

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...), not DHT/JPG/DAC.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7,
                       0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # markers without a length field


UPLOAD_PREFIX = "upload:"
"""`AvatarKey` sources of decoded pictures are ``upload:<sha256 of the bytes>``."""


class AvatarError(ValueError):
    """An uploaded avatar was refused; the message says why and what is accepted."""


@dataclass(frozen=True, slots=True)
class AvatarLimits:
    """Bounds on an uploaded avatar.

    Attributes:
        max_bytes: largest accepted upload.
        min_side, max_side: bounds on the picture's width and height, px.
    """

    max_bytes: int = 8 * 1024 * 1024
    min_side: int = 64
    max_side: int = 4096


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG or JPEG header without decoding; else ``None``."""
    if data.startswith(_PNG_MAGIC) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(_JPEG_MAGIC):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def decode_avatar(data: bytes, limits: AvatarLimits | None = None) -> AvatarKey:
    """Validate and decode an uploaded picture into an in-memory `AvatarKey`.

    The key's ``image`` is the picture, ``(H, W, 3)`` uint8 RGB; its source
    is ``upload:`` and the SHA-256 of ``data``. Raises `AvatarError` saying
    why a picture is refused.
    """
    limits = limits or AvatarLimits()
    if not data:
        raise AvatarError("the upload is empty; send a PNG or JPEG picture")
    if len(data) > limits.max_bytes:
        raise AvatarError(f"the picture is {len(data) / 1e6:.1f} MB; the limit is "
                          f"{limits.max_bytes / 1e6:.1f} MB")
    size = image_size(data)
    if size is None:
        raise AvatarError("not a PNG or JPEG picture; upload a .png or .jpg portrait")
    _check_side(size, limits)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise AvatarError("the picture is damaged and could not be decoded; try another file")
    rgb = np.ascontiguousarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    return AvatarKey(UPLOAD_PREFIX + hashlib.sha256(data).hexdigest(), image=rgb)


def _check_side(size: tuple[int, int], limits: AvatarLimits) -> None:
    width, height = size
    if min(width, height) < limits.min_side:
        raise AvatarError(f"the picture is {width}x{height}; it must be at least "
                          f"{limits.min_side} px on each side")
    if max(width, height) > limits.max_side:
        raise AvatarError(f"the picture is {width}x{height}; it must be at most "
                          f"{limits.max_side} px on each side")
