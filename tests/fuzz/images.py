"""Pictures for the avatar fuzz target, made byte by byte where OpenCV cannot write them.

OpenCV writes PNG and JPEG in gray, colour, 16-bit and alpha; it cannot write
a CMYK JPEG nor add EXIF, so `cmyk_jpeg` assembles a minimal valid one (flat
grey, one Huffman code for each table) and `with_exif_orientation` inserts an
EXIF block that asks viewers to rotate.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def pattern(width: int, height: int, channels: int = 3, dtype: type = np.uint8) -> np.ndarray:
    """A smooth gradient (compresses well, unlike noise) of the given shape and dtype."""
    top = np.iinfo(dtype).max
    ys, xs = np.mgrid[0:height, 0:width]
    planes = [(xs * (k + 1) + ys * (3 - k)) % (top + 1) for k in range(channels)]
    picture = np.stack(planes, axis=-1).astype(dtype)
    return picture[..., 0] if channels == 1 else picture


def encode(picture: np.ndarray, ext: str, *params: int) -> bytes:
    ok, data = cv2.imencode(ext, picture, list(params))
    if not ok:
        raise ValueError(f"OpenCV could not write {picture.shape} {picture.dtype} as {ext}")
    return data.tobytes()


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _huffman_table(table_class: int) -> bytes:
    """One symbol (0: a DC difference of 0, or the AC end of block) coded as the bit 0."""
    return _segment(0xC4, bytes([table_class << 4, 1] + [0] * 15 + [0]))


def cmyk_jpeg(width: int = 80, height: int = 96) -> bytes:
    """A baseline four-component (Adobe CMYK) JPEG of flat mid-grey planes."""
    adobe = _segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))
    quant = _segment(0xDB, bytes([0] + [1] * 64))
    parts = b"".join(bytes([i, 0x11, 0]) for i in range(1, 5))
    frame = _segment(0xC0, struct.pack(">BHHB", 8, height, width, 4) + parts)
    scan = _segment(0xDA, bytes([4]) + b"".join(bytes([i, 0]) for i in range(1, 5))
                    + bytes([0, 63, 0]))
    # Each 8x8 block is two 0 bits (DC difference 0, end of block): one byte per MCU of 4.
    blocks = bytes(-(-width // 8) * -(-height // 8))
    return (b"\xff\xd8" + adobe + quant + frame + _huffman_table(0) + _huffman_table(1)
            + scan + blocks + b"\xff\xd9")


def with_exif_orientation(jpeg: bytes, orientation: int = 6) -> bytes:
    """``jpeg`` with an EXIF block whose Orientation tag asks for a rotation (6: 90 degrees)."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00*" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)
    return jpeg[:2] + _segment(0xE1, b"Exif\x00\x00" + tiff) + jpeg[2:]


def png_claiming(width: int, height: int, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG of a valid header (CRC included) claiming ``width x height`` and no pixels."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def png_resized_header(png: bytes, width: int, height: int) -> bytes:
    """``png`` with its IHDR's size replaced (and its CRC made valid again)."""
    header = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png_chunk(b"IHDR", header) + png[33:]
