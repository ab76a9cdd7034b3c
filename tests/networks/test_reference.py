"""The relative reference's reset rules: start, reset request, mode change, face lost."""

from __future__ import annotations

import torch

from networks.motion import MotionMode
from networks.reference import RelativeReference

RELATIVE, CROSS = MotionMode.RELATIVE, MotionMode.CROSS


def coeffs(value: float) -> torch.Tensor:
    return torch.full((1, 3), value)


def test_the_first_driven_frame_is_the_reference_and_is_kept():
    tracker = RelativeReference()
    assert tracker.coeffs is None
    first = coeffs(1.0)
    assert tracker.update(RELATIVE, 0, first) == (first, True)
    got = tracker.update(RELATIVE, 0, coeffs(2.0))
    assert got.coeffs is first and not got.reset


def test_a_changed_reset_count_starts_a_new_reference():
    tracker = RelativeReference()
    tracker.update(RELATIVE, 0, coeffs(1.0))
    new = coeffs(2.0)
    assert tracker.update(RELATIVE, 1, new) == (new, True)
    assert tracker.update(RELATIVE, 1, coeffs(3.0)) == (new, False)


def test_the_reset_count_seen_first_is_no_reset_request():
    tracker = RelativeReference()
    first = coeffs(1.0)
    assert tracker.update(RELATIVE, 5, first).reset
    assert tracker.update(RELATIVE, 5, coeffs(2.0)) == (first, False)


def test_a_mode_change_starts_a_new_reference():
    tracker = RelativeReference()
    tracker.update(RELATIVE, 0, coeffs(1.0))
    switch = coeffs(2.0)
    assert tracker.update(CROSS, 0, switch) == (switch, True)
    back = coeffs(3.0)
    assert tracker.update(RELATIVE, 0, back) == (back, True)


def test_a_lost_face_forgets_the_reference_and_the_next_face_starts_one():
    tracker = RelativeReference()
    tracker.update(RELATIVE, 0, coeffs(1.0))
    assert tracker.update(RELATIVE, 0, None) == (None, False)
    assert tracker.coeffs is None
    assert tracker.update(RELATIVE, 0, None) == (None, False)
    found = coeffs(2.0)
    assert tracker.update(RELATIVE, 0, found) == (found, True)


def test_a_reset_asked_while_the_face_is_lost_is_not_lost():
    tracker = RelativeReference()
    tracker.update(RELATIVE, 0, coeffs(1.0))
    tracker.update(RELATIVE, 1, None)
    found = coeffs(2.0)
    assert tracker.update(RELATIVE, 1, found) == (found, True)
    assert tracker.update(RELATIVE, 1, coeffs(3.0)) == (found, False)
