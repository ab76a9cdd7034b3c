"""Hypothesis profiles of the fuzz suite: ``ci`` (the default, seconds) and ``fuzz``.

``fuzz`` runs each target's full budget (over 10,000 cases in all); choose
it with ``VICOCAM_FUZZ=1`` or ``--hypothesis-profile fuzz``
(``scripts/fuzz-record.py`` does, and keeps the record). Both bound every
case's time (a deadline) and keep no example database (a failure prints the
blob that reproduces it); ``ci`` is also derandomised, so CI runs the same
cases every time.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

FUZZ_ENV = "VICOCAM_FUZZ"
CASE_DEADLINE = timedelta(seconds=10)
"""Longest one case may take; the slowest targets take tens of milliseconds."""

_COMMON = {
    "deadline": CASE_DEADLINE,
    "database": None,
    "print_blob": True,
    # Generators of whole files and frames are slow by hypothesis's standards, on purpose.
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.function_scoped_fixture],
}

settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("fuzz", **_COMMON)
settings.load_profile("fuzz" if os.environ.get(FUZZ_ENV) == "1" else "ci")


def fuzzing() -> bool:
    """Whether the ``fuzz`` profile is loaded (read when a test module is imported)."""
    return settings.get_current_profile_name() == "fuzz"


def budget(ci: int, fuzz: int) -> settings:
    """Settings for one target: ``ci`` examples normally, ``fuzz`` under the fuzz profile."""
    return settings(max_examples=fuzz if fuzzing() else ci)


def case_timeout_s(ci: float, fuzz: float) -> float:
    """A whole target's time limit (pytest-timeout), so that a hang fails instead of waiting."""
    return fuzz if fuzzing() else ci
