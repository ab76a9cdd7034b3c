"""Fuzzing uploaded avatars: every upload is a bounded RGB picture or an `AvatarError`.

Seeds: colour, grey, 16-bit, alpha, CMYK, EXIF-rotated, progressive, truncated,
empty and header-bomb pictures (`tests.fuzz.corpus`); cases: byte edits of
them, headers claiming other sizes (CRC made valid, so the decoder trusts
them), and new pictures of any size, channel count and depth.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stages.webrtc.uploads import AvatarError, AvatarLimits, decode_avatar
from tests.fuzz import images, tally
from tests.fuzz.corpus import seeds
from tests.fuzz.mutations import mutated
from tests.fuzz.profiles import budget, case_timeout_s

SEEDS = seeds("avatars")
LIMITS = AvatarLimits()
SIDES = st.integers(0, 70_000) | st.integers(60, 200)


def check_upload(data: bytes, target: str) -> None:
    """Decoded within the limits, or refused with a reason: nothing else."""
    try:
        key = decode_avatar(data, LIMITS)
    except AvatarError as exc:
        assert str(exc)
        tally.count(target, "AvatarError")
        return
    image = key.image
    assert image is not None and image.dtype == np.uint8 and image.ndim == 3
    assert image.shape[2] == 3 and image.flags.c_contiguous
    assert LIMITS.min_side <= min(image.shape[:2]) and max(image.shape[:2]) <= LIMITS.max_side
    tally.count(target, "decoded")


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_picture_is_decoded_or_refused(name):
    check_upload(SEEDS[name], "avatars.seeds")


def test_exif_rotation_cmyk_and_bombs_are_handled():
    plain, turned = decode_avatar(SEEDS["rgb.jpg"]), decode_avatar(SEEDS["exif-rotated.jpg"])
    assert plain.image.shape == (96, 80, 3) and turned.image.shape == (80, 96, 3)
    assert decode_avatar(SEEDS["cmyk.jpg"]).image.shape == (96, 80, 3)
    with pytest.raises(AvatarError, match="at most 4096"):
        decode_avatar(SEEDS["bomb-header.png"])
    with pytest.raises(AvatarError, match="empty"):
        decode_avatar(SEEDS["empty.png"])


@budget(ci=200, fuzz=2500)
@given(case=mutated(SEEDS))
def test_edited_pictures_are_decoded_or_refused(case):
    check_upload(case[1], "avatars.bytes")


@st.composite
def resized_headers(draw: st.DrawFn) -> bytes:
    """A real PNG whose header claims another size; its CRC is valid."""
    name = draw(st.sampled_from(sorted(n for n in SEEDS if n.endswith(".png") and SEEDS[n][:8]
                                       == b"\x89PNG\r\n\x1a\n" and len(SEEDS[n]) > 33)))
    return images.png_resized_header(SEEDS[name], draw(SIDES), draw(SIDES))


@budget(ci=100, fuzz=1000)
@given(data=resized_headers())
def test_pictures_claiming_another_size_are_decoded_or_refused(data):
    check_upload(data, "avatars.headers")


@st.composite
def new_pictures(draw: st.DrawFn) -> bytes:
    width, height = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    channels = draw(st.sampled_from([1, 3, 4]))
    ext = draw(st.sampled_from([".png", ".jpg"]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16])) if ext == ".png" else np.uint8
    data = images.encode(images.pattern(width, height, channels, dtype), ext)
    return images.with_exif_orientation(data, draw(st.integers(0, 9))) if ext == ".jpg" \
        and draw(st.booleans()) else data


@budget(ci=60, fuzz=600)
@given(data=new_pictures())
def test_new_pictures_of_any_size_depth_and_channels_are_decoded_or_refused(data):
    check_upload(data, "avatars.generated")


# ---- through the server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def upload_server():
    from aiohttp.test_utils import TestClient, TestServer

    from stages.webrtc.peer_session import Session, SessionConfig, identity_factory
    from stages.webrtc.server import ServerConfig, WebRTCServer

    server = WebRTCServer(ServerConfig(api_rate_per_s=1e9, api_burst=10**9))
    # An idle session (no peer): the route validates and stores the picture.
    server.sessions["s1"] = Session("s1", identity_factory, SessionConfig(),
                                    initial=server.config.settings)
    async def start() -> TestClient:
        client = TestClient(TestServer(server.build_app()))
        await client.start_server()
        return client

    runner = asyncio.Runner()
    client = runner.run(start())
    yield runner, client
    runner.run(client.close())
    runner.close()


async def _upload(client, data: bytes) -> tuple[int, dict]:
    response = await client.post("/api/sessions/s1/avatar", data=data,
                                 headers={"Content-Type": "image/png"})
    return response.status, await response.json(content_type=None)


@pytest.mark.timeout(case_timeout_s(ci=120, fuzz=900))
@budget(ci=40, fuzz=300)
@given(case=mutated(SEEDS))
def test_the_upload_route_answers_200_or_a_fixed_400(upload_server, case):
    runner, client = upload_server
    status, reply = runner.run(asyncio.wait_for(_upload(client, case[1]), 10))
    tally.count("avatars.route", str(status))
    assert status in (200, 400), (status, reply)
    assert status == 200 or "Error" not in reply["error"]
