"""The version gate: an aiortc the patches do not fit is refused at session start, clearly."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

pytest.importorskip("aiortc")

import aiortc
from aiortc import RTCPeerConnection
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from pipeline.errors import UserError
from stages.webrtc.aiortc_patches import (
    INTERNALS,
    SUPPORTED,
    PatchConfig,
    PlayoutDelay,
    UnsupportedAiortcError,
    install_patches,
    require_supported_aiortc,
)
from stages.webrtc.aiortc_patches.compat import Internal, check_aiortc, version_supported
from stages.webrtc.aiortc_patches.jitter import FrameAssembler
from tests.conftest import REPO_ROOT

BUFFER = "_RTCRtpReceiver__jitter_buffer"


def test_the_installed_aiortc_passes():
    require_supported_aiortc()
    assert version_supported(aiortc.__version__)
    assert all(internal.present() for internal in INTERNALS)


@pytest.mark.parametrize(("version", "supported"), [
    ("1.9.0", True), ("1.16.0", True), ("1.99.1rc1", True),
    ("1.8.9", False), ("2.0.0", False), ("0.9.28", False), ("dev", False),
])
def test_the_range_matches_pyproject(version, supported):
    assert SUPPORTED == ">=1.9,<2"
    assert version_supported(version) is supported


def test_another_version_is_refused_with_what_to_install(monkeypatch):
    monkeypatch.setattr(aiortc, "__version__", "2.1.0")
    with pytest.raises(UnsupportedAiortcError) as caught:
        require_supported_aiortc()
    message = str(caught.value)
    assert "aiortc 2.1.0" in message
    assert SUPPORTED in message
    assert f"pip install 'aiortc{SUPPORTED}'" in message
    assert caught.value.installed == "2.1.0"
    assert isinstance(caught.value, UserError)  # the command line prints it as one line


def test_a_missing_method_is_named(monkeypatch):
    monkeypatch.delattr(RemoteBitrateEstimator, "add")
    with pytest.raises(UnsupportedAiortcError, match=r"aiortc\.rate\.RemoteBitrateEstimator\.add"):
        require_supported_aiortc()


def test_a_private_attribute_the_constructor_no_longer_sets_is_named(monkeypatch):
    def moved_init(self, *args, **kwargs):
        self.buffer_elsewhere = None

    monkeypatch.setattr(RTCRtpReceiver, "__init__", moved_init)
    with pytest.raises(UnsupportedAiortcError, match=BUFFER):
        require_supported_aiortc()


def test_a_missing_module_is_named():
    missing = Internal("aiortc.nowhere", "Thing")
    with pytest.raises(UnsupportedAiortcError, match=r"aiortc\.nowhere\.Thing"):
        check_aiortc([missing])


def test_an_aiortc_without_a_module_the_patches_import_fails_on_import():
    # A fresh interpreter: this one has the patches imported already.
    code = "import sys; sys.modules['aiortc.rate'] = None; import stages.webrtc.aiortc_patches"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT, check=False, timeout=60)
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("stages.webrtc.aiortc_patches.compat.UnsupportedAiortcError: aiortc ")
    assert "aiortc.rate" in error and f"Supported: aiortc{SUPPORTED}" in error


def test_install_refuses_before_touching_the_connection(monkeypatch):
    monkeypatch.setattr(aiortc, "__version__", "1.8.0")

    async def scenario():
        pc = RTCPeerConnection()
        try:
            video = pc.addTransceiver("video")
            with pytest.raises(UnsupportedAiortcError, match=r"aiortc 1\.8\.0"):
                install_patches(pc, PatchConfig())
            return vars(video.receiver)[BUFFER]
        finally:
            await pc.close()

    assert not isinstance(asyncio.run(scenario()), FrameAssembler)


def test_install_with_the_defaults_adds_only_the_frame_assemblers():
    async def scenario():
        pc = RTCPeerConnection()
        try:
            video = pc.addTransceiver("video")
            install_patches(pc, PatchConfig())
            return vars(video.receiver)
        finally:
            await pc.close()

    state = asyncio.run(scenario())
    assert isinstance(state[BUFFER], FrameAssembler)
    assert type(state["_RTCRtpReceiver__remote_bitrate_estimator"]) is RemoteBitrateEstimator


def test_a_playout_delay_needs_the_offer():
    with pytest.raises(ValueError, match="offer_sdp"):
        install_patches(object(), PatchConfig(playout_delay=PlayoutDelay()))
