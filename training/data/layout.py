"""The FOMM / LIA dataset layout: ``root/{train,test}/<clip>``.

Each clip is either a folder of frames (``.png``/``.jpg``, in name order) or
one video file (``.mp4``, ``.mov``, ``.avi``, ``.mkv``). This is the layout
FOMM's ``video-preprocessing`` writes and LIA's ``Vox256`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})

_LAYOUT_HINT = (
    "expected root/train/ and root/test/, each holding one folder of .png/.jpg frames "
    "or one .mp4/.mov/.avi/.mkv file per clip"
)


class ClipKind(StrEnum):
    FRAMES = "frames"
    VIDEO = "video"


@dataclass(frozen=True)
class ClipSource:
    """Where one clip lives and in which form."""

    name: str
    path: Path
    kind: ClipKind


def frame_files(folder: Path) -> list[Path]:
    """The frames of a frame-folder clip, in name order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def find_clips(root: Path, split: str) -> list[ClipSource]:
    """All clips of ``root/split``, sorted by name; raises if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist; {_LAYOUT_HINT}")
    folder = root / split
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(
            f"{root} has no {split}/ folder (it has: {found or 'no folders'}); {_LAYOUT_HINT}"
        )
    clips = [clip for entry in sorted(folder.iterdir()) if (clip := _as_clip(entry))]
    if not clips:
        raise ValueError(f"{folder} holds no clips; {_LAYOUT_HINT}")
    return clips


def _as_clip(entry: Path) -> ClipSource | None:
    if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
        return ClipSource(entry.stem, entry, ClipKind.VIDEO)
    if entry.is_dir() and frame_files(entry):
        return ClipSource(entry.name, entry, ClipKind.FRAMES)
    return None
