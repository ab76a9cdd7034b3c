"""Live settings and keyboard controls."""

import io
import os
import threading

import pytest

from networks.motion import MotionMode
from pipeline.control import SettingsBox
from stages.reenact.controls import KeyReader, LiveControls
from stages.reenact.live_settings import (
    MAX_STRENGTH,
    AvatarKey,
    LiveSettings,
    OutputMode,
    change_strength,
    next_avatar,
)

AVATARS = (AvatarKey("a.png"), AvatarKey("b.png"), AvatarKey("c.png"))


def controls(**changes):
    box = SettingsBox(LiveSettings(avatar=AVATARS[0], **changes))
    stops = []
    return box, LiveControls(box, MotionMode.CROSS, AVATARS, lambda: stops.append(1)), stops


def test_keys_change_one_setting_each():
    box, keys, stops = controls()
    keys.handle("r")
    assert box.get().reset_count == 1
    keys.handle("+")
    assert box.get().strength == pytest.approx(1.1)
    keys.handle("-")
    keys.handle("-")
    assert box.get().strength == pytest.approx(0.9)
    keys.handle("m")
    assert box.get().mode is MotionMode.RELATIVE  # cycles on from the family default (cross)
    keys.handle("o")
    assert box.get().output is OutputMode.CROP  # side by side -> crop
    keys.handle("n")
    assert box.get().avatar == AVATARS[1]
    assert keys.handle("x") is None and stops == []
    assert keys.handle("q") == "stopping" and stops == [1]


def test_mode_and_avatar_cycles_wrap_around():
    box, keys, _ = controls()
    modes = [box.get().mode]
    for _ in range(3):
        keys.handle("m")
        modes.append(box.get().mode)
    assert modes == [None, MotionMode.RELATIVE, MotionMode.ABSOLUTE, MotionMode.CROSS]
    for _ in range(3):
        next_avatar(box, AVATARS)
    assert box.get().avatar == AVATARS[0]


def test_strength_is_clamped_and_settings_are_validated():
    box, _, _ = controls(strength=MAX_STRENGTH)
    change_strength(box, 0.1)
    assert box.get().strength == MAX_STRENGTH
    with pytest.raises(ValueError, match="strength"):
        LiveSettings(strength=-0.5)


def test_a_single_avatar_cannot_be_switched():
    box = SettingsBox(LiveSettings(avatar=AVATARS[0]))
    keys = LiveControls(box, MotionMode.CROSS, AVATARS[:1])
    assert "only one avatar" in (keys.handle("n") or "")
    assert box.version == 0


def test_the_key_reader_does_nothing_without_a_terminal():
    seen: list[str] = []
    with KeyReader(seen.append, stream=io.StringIO("rq")) as reader:
        assert not reader.active
    assert seen == []


def test_the_key_reader_uses_cbreak_on_a_terminal_and_restores_it():
    termios = pytest.importorskip("termios")
    master, slave = os.openpty()
    stream = os.fdopen(slave, "r")
    before = termios.tcgetattr(slave)
    got = threading.Event()
    keys = []

    def on_key(key):
        keys.append(key)
        got.set()
        return "ok"

    echo = io.StringIO()
    try:
        with KeyReader(on_key, stream=stream, echo=echo) as reader:
            assert reader.active
            assert not termios.tcgetattr(slave)[3] & termios.ICANON  # unbuffered keys
            os.write(master, b"r")
            assert got.wait(10)
        assert termios.tcgetattr(slave) == before
    finally:
        stream.close()
        os.close(master)
    assert keys == ["r"] and "[ok]" in echo.getvalue()
