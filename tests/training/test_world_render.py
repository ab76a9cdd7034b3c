"""The renderer: deterministic, consistent ground truth, features that move as documented."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.training.conftest import first_seed_with
from training.world import LANDMARK_NAMES, MASK_NAMES, HairStyle, Identity, Motion, render
from training.world.canvas import Region
from training.world.sheet import contact_sheet
from training.world.timing import TimingConfig, measure

SIZE = 64


def lm(frame, name: str) -> np.ndarray:
    return frame.landmarks[LANDMARK_NAMES.index(name)].astype(np.float64)


@pytest.fixture(scope="module")
def person() -> Identity:
    return Identity.from_seed(first_seed_with(HairStyle.SHORT))


def test_render_is_byte_identical_when_repeated():
    motion = Motion(yaw=12.5, pitch=-4, roll=3, mouth_open=0.4, smile=0.3, blink_left=0.2)
    first = render(Identity.from_seed(7), motion, SIZE)
    again = render(Identity.from_seed(7), Motion(**vars(motion)), SIZE)
    assert first.image.tobytes() == again.image.tobytes()
    assert first.labels.tobytes() == again.labels.tobytes()
    assert first.landmarks.tobytes() == again.landmarks.tobytes()
    assert np.array_equal(first.face_outline, again.face_outline)


def test_identity_from_seed_is_stable_and_seeds_differ():
    assert Identity.from_seed(3) == Identity.from_seed(3)
    assert Identity.from_seed(3) != Identity.from_seed(4)


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_output_shapes_at_any_size(size):
    frame = render(Identity.from_seed(1), Motion(), size)
    assert frame.image.shape == (size, size, 3) and frame.image.dtype == np.uint8
    assert frame.landmarks.shape == (len(LANDMARK_NAMES), 2)
    assert frame.labels.shape == (size, size)
    assert frame.mask_stack().shape == (len(MASK_NAMES), size, size)
    # A neutral face sits inside the picture, facing the camera.
    assert (frame.landmarks >= 0).all() and (frame.landmarks < size).all()
    assert frame.landmark_visible.all()


def test_landmarks_scale_with_size():
    small = render(Identity.from_seed(2), Motion(yaw=10), 64)
    large = render(Identity.from_seed(2), Motion(yaw=10), 256)
    # Pixel centres at integers: x_256 + 0.5 = 4 * (x_64 + 0.5).
    np.testing.assert_allclose(large.landmarks + 0.5, 4 * (small.landmarks + 0.5), atol=1e-3)


def test_different_identities_look_different():
    frames = [render(Identity.from_seed(s), Motion(), SIZE).image.astype(int) for s in range(6)]
    for a in range(len(frames)):
        for b in range(a + 1, len(frames)):
            assert np.abs(frames[a] - frames[b]).mean() > 8, (a, b)


def test_identities_cover_every_hair_style():
    styles = {Identity.from_seed(s).hair.style for s in range(200)}
    assert styles == set(HairStyle)


def test_yaw_moves_the_nose_tip_towards_the_turn(person):
    xs = []
    for yaw in (-25.0, 0.0, 25.0):
        frame = render(person, Motion(yaw=yaw), SIZE)
        eyes_mid = (lm(frame, "eye_left_inner") + lm(frame, "eye_right_inner")) / 2
        xs.append(lm(frame, "nose_tip")[0] - eyes_mid[0])
    # The tip stands out of the face, so it swings further than the eyes.
    assert xs[0] < xs[1] - 1.0 < xs[2] - 2.0
    assert abs(xs[1]) < 0.5


def test_strong_yaw_hides_the_far_jaw(person):
    frame = render(person, Motion(yaw=35.0), SIZE)
    visible = dict(zip(LANDMARK_NAMES, frame.landmark_visible, strict=True))
    assert not visible["jaw_8"] and visible["jaw_0"] and visible["nose_tip"]


def test_pitch_up_raises_the_nose_tip(person):
    down = render(person, Motion(pitch=-15.0), SIZE)
    up = render(person, Motion(pitch=15.0), SIZE)
    assert lm(up, "nose_tip")[1] < lm(down, "nose_tip")[1] - 2.0


def test_roll_tilts_the_eye_line_clockwise(person):
    frame = render(person, Motion(roll=12.0), SIZE)
    left, right = lm(frame, "eye_left_outer"), lm(frame, "eye_right_outer")
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    assert 8.0 < angle < 16.0


def test_translation_and_scale_move_the_face(person):
    base = render(person, Motion(), SIZE)
    moved = render(person, Motion(tx=0.05, ty=-0.04), SIZE)
    shift = (moved.landmarks - base.landmarks).mean(axis=0)
    np.testing.assert_allclose(shift, [0.05 * SIZE, -0.04 * SIZE], atol=0.2)
    big = render(person, Motion(scale=1.1), SIZE)
    width = lm(base, "jaw_8")[0] - lm(base, "jaw_0")[0]
    assert lm(big, "jaw_8")[0] - lm(big, "jaw_0")[0] > 1.05 * width


def test_mouth_opening_separates_the_lips_and_shows_the_inside(person):
    closed = render(person, Motion(), SIZE)
    opened = render(person, Motion(mouth_open=1.0), SIZE)
    gap = lambda f: lm(f, "mouth_inner_bottom")[1] - lm(f, "mouth_inner_top")[1]  # noqa: E731
    assert gap(closed) < 0.2 and gap(opened) > 0.05 * SIZE
    # The jaw drops with it.
    assert lm(opened, "jaw_4")[1] > lm(closed, "jaw_4")[1] + 1.0
    x, y = np.round((lm(opened, "mouth_inner_top") + lm(opened, "mouth_inner_bottom")) / 2)
    inside = opened.image[int(y), int(x)].astype(int)
    lips = closed.image[int(y), int(x)].astype(int)
    assert np.abs(inside - lips).sum() > 60


def test_smile_raises_the_mouth_corners(person):
    flat = render(person, Motion(), SIZE)
    smile = render(person, Motion(smile=1.0), SIZE)
    for corner in ("mouth_left", "mouth_right"):
        assert lm(smile, corner)[1] < lm(flat, corner)[1] - 0.5


def test_blink_closes_only_the_chosen_eye(person):
    open_eyes = render(person, Motion(), 256)
    wink = render(person, Motion(blink_left=1.0), 256)
    height = lambda f, side: lm(f, f"eye_{side}_bottom")[1] - lm(f, f"eye_{side}_top")[1]  # noqa: E731
    assert height(open_eyes, "left") > 2.0
    assert height(wink, "left") < 0.05
    assert height(wink, "right") == pytest.approx(height(open_eyes, "right"))
    # The white of the closed eye is gone.
    left, right = lm(wink, "eye_left_outer"), lm(wink, "eye_left_inner")
    x0, x1 = int(left[0]), int(right[0]) + 1
    y = round(float(left[1]))
    box = (slice(y - 8, y + 8), slice(x0, x1))
    whites = lambda f: (f.image[box].min(axis=2) > 200).sum()  # noqa: E731
    assert whites(open_eyes) > 20 and whites(wink) == 0


def test_brow_raise_lifts_the_brows(person):
    rest = render(person, Motion(), SIZE)
    raised = render(person, Motion(brow_raise=1.0), SIZE)
    frown = render(person, Motion(brow_raise=-1.0), SIZE)
    name = "brow_left_inner"
    assert lm(raised, name)[1] < lm(rest, name)[1] - 1.0 < lm(frown, name)[1] - 1.5


def test_regions_partition_the_picture(person):
    frame = render(person, Motion(yaw=10, mouth_open=0.5), SIZE)
    parts = frame.mask_stack(("hair", "torso", "face", "background")).astype(int)
    assert (parts.sum(axis=0) == 1).all()  # disjoint and covering
    assert all(part.sum() > 20 for part in parts)
    assert set(np.unique(frame.labels)) <= {int(r) for r in Region}


def test_face_outline_is_a_band_on_the_face_boundary(person):
    frame = render(person, Motion(), SIZE)
    band, face = frame.face_outline, frame.mask("face")
    assert band.any() and not band.all()
    inner = cv2.erode(face.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outer = cv2.dilate(face.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert not (band & inner).any()  # nothing deep inside the face
    assert not (band & ~outer).any()  # nothing far outside it
    assert (band & face).any() and (band & ~face).any()  # it straddles the edge


def test_bald_heads_have_no_hair():
    frame = render(Identity.from_seed(first_seed_with(HairStyle.BALD)), Motion(), SIZE)
    assert not frame.mask("hair").any()
    assert frame.mask("face").sum() > 0.15 * SIZE * SIZE


def test_unknown_mask_name_is_a_clear_error(person):
    with pytest.raises(KeyError, match="masks are"):
        render(person, Motion(), SIZE).mask("beard")


def test_contact_sheet_tiles_renders_and_saves(tmp_path):
    identities = [Identity.from_seed(s) for s in (0, 1)]
    motions = [Motion(), Motion(yaw=20), Motion(mouth_open=1)]
    sheet = contact_sheet(identities, motions, 48, gap=2)
    assert sheet.shape == (2 * 50 - 2, 3 * 50 - 2, 3)
    tile = sheet[50 : 50 + 48, 100 : 100 + 48]
    assert np.array_equal(tile, render(identities[1], motions[2], 48).image)
    path = tmp_path / "sheet.png"
    assert cv2.imwrite(str(path), sheet[..., ::-1])
    saved = cv2.imread(str(path))
    assert saved is not None and np.array_equal(saved[..., ::-1], sheet)


def test_timing_reports_per_frame_figures_from_its_clocks():
    ticks = iter(range(10_000))
    wall = lambda: next(ticks) * 0.002  # noqa: E731  every reading 2 ms later
    cpu = lambda: 0.0  # noqa: E731
    figures = measure(TimingConfig(sizes=(24, 32), frames=3, warmup=1), wall=wall, cpu=cpu)
    assert set(figures) == {"24", "32"}
    assert figures["32"] == {"wall_ms": pytest.approx(2.0), "cpu_ms": 0.0}
