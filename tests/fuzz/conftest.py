"""Fixtures of the fuzz suite: every target runs under a memory ceiling.

The profiles (`tests.fuzz.profiles`) bound each case's time; here each
target's peak memory is bounded too, so a decompression bomb that gets past a
check fails the test instead of passing quietly.
"""

from __future__ import annotations

import resource

import pytest

pytest.importorskip("hypothesis")

MAX_GROWTH_MB = 1024
"""Largest rise of the process's peak resident memory that one target may cause."""


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


@pytest.fixture(autouse=True)
def memory_ceiling():
    before = peak_mb()
    yield
    grown = peak_mb() - before
    assert grown < MAX_GROWTH_MB, f"peak memory rose by {grown:.0f} MB in one fuzz target"
