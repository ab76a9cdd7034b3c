"""Fixtures shared by every test package.

Real media for tests lives in ``../shared/media`` beside the checkout (and
beside CI's clone). It is read in place, never copied into the project, and
tests that need it skip cleanly when it is absent.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

with contextlib.suppress(ImportError):
    # Registered before pytest reads --hypothesis-profile; hypothesis is a dev extra.
    import tests.fuzz.profiles  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``$VICOCAM_SHARED`` if set, else ``../shared`` next to the checkout."""
    env = os.environ.get("VICOCAM_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    media = shared_dir() / "media"
    if not media.is_dir():
        pytest.skip(f"shared media not available (looked in {media})")
    return media


@pytest.fixture(scope="session")
def shared_method() -> Path:
    method = shared_dir() / "method"
    if not method.is_dir():
        pytest.skip(f"shared method files not available (looked in {method})")
    return method
