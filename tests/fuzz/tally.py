"""Cases run per fuzz target, counted by the tests themselves; `scripts/fuzz-record.py` reads it."""

from __future__ import annotations

from collections import Counter, defaultdict

CASES: Counter[str] = Counter()
"""Cases run so far in this process, by target name."""
OUTCOMES: defaultdict[str, Counter[str]] = defaultdict(Counter)
"""How the cases of each target ended (``"400"``, ``"AvatarError"``, ``"decoded"``...)."""
KNOWN_FAILURES: Counter[str] = Counter()
"""Cases that hit a known bug left to its owner (each has a strict xfail test), by bug."""


def count(target: str, outcome: str = "") -> None:
    CASES[target] += 1
    if outcome:
        OUTCOMES[target][outcome] += 1


def known_failure(bug: str) -> None:
    KNOWN_FAILURES[bug] += 1
