"""Avatar uploads on the session's control channel, with a real aiortc peer: a picture in
16 KiB chunks becomes the session's avatar as an HTTP upload would; too large, not an
image, no face, and bad chunk sequences are refused with a clear error and change nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("aiortc")

from pipeline.control import SettingsBox
from stages.reenact.live_settings import AvatarKey, LiveSettings
from stages.webrtc.channel_upload import MAX_CHUNK_BYTES, ChunkedUpload, read_header
from stages.webrtc.control_channel import ControlChannel, ControlConfig, ControlTarget
from stages.webrtc.server import ServerConfig, WebRTCServer
from stages.webrtc.settings_messages import AvatarNames
from stages.webrtc.uploads import AvatarLimits
from tests.webrtc.peers import wait_for
from tests.webrtc.test_control_channel import FAST, ChannelPeer, in_session, paint_factory


def noisy_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG that does not compress: several chunks' worth of bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()


def send_upload(peer: ChannelPeer, request_id: Any, name: str, data: bytes,
                chunk: int = MAX_CHUNK_BYTES, announced: int | None = None) -> None:
    peer.channel.send(json.dumps({"type": "avatar-upload", "id": request_id, "name": name,
                                  "bytes": len(data) if announced is None else announced}))
    for at in range(0, len(data), chunk):
        peer.channel.send(data[at:at + chunk])


def server_with(prepare=None, **config) -> WebRTCServer:
    return WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=FAST, **config),
                        paint_factory, prepare_avatar=prepare)


def no_face(avatar: AvatarKey) -> None:
    if avatar.image is not None and avatar.image.mean() < 20:
        raise ValueError("no face found in the picture; upload a portrait")


def test_a_picture_sent_in_chunks_becomes_the_sessions_avatar():
    picture = noisy_png(200, 160)
    assert len(picture) > 4 * MAX_CHUNK_BYTES

    async def body(client, peer, sid):
        send_upload(peer, 7, "me.png", picture)
        reply = await peer.reply(7)
        return reply, server.sessions[sid].settings.get().avatar, peer.of_type("error")

    server = server_with()
    reply, avatar, errors = in_session(server, body)
    assert reply["type"] == "settings" and reply["settings"]["avatar"] == "me.png"
    assert avatar.source == "upload:" + hashlib.sha256(picture).hexdigest()
    assert avatar.image.shape == (160, 200, 3)
    assert errors == []


def test_too_large_not_an_image_and_no_face_are_refused_as_over_http():
    dark = cv2.imencode(".png", np.full((96, 96, 3), 5, np.uint8))[1].tobytes()

    async def body(client, peer, sid):
        uploads = [("big.png", b"", 2_000_000),  # over the limit: refused at the header
                   ("notes.txt", b"these are not the pixels you are looking for", None),
                   ("dark.png", dark, None)]
        replies = []
        for i, (name, data, announced) in enumerate(uploads):  # one avatar change at a time
            send_upload(peer, i, name, data, announced=announced)
            replies.append(await peer.reply(i))
        http = await client.post(f"/api/sessions/{sid}/avatar", data=dark,
                                 headers={"Content-Type": "image/png"})
        return replies, (await http.json())["error"], server.sessions[sid].settings.get()

    server = server_with(avatar_limits=AvatarLimits(max_bytes=1_000_000), prepare=no_face)
    (big, text, dark_reply), http_error, settings = in_session(server, body)
    assert big["type"] == "error" and "2.0 MB; the limit is 1.0 MB" in big["error"]
    assert text["type"] == "error" and "not a PNG or JPEG" in text["error"]
    assert dark_reply["type"] == "error" and dark_reply["error"] == http_error
    assert "no face" in dark_reply["error"]
    assert settings.avatar is None  # nothing changed


def test_bad_chunk_sequences_are_refused_and_the_next_upload_works():
    picture = noisy_png(120, 100, seed=1)

    async def body(client, peer, sid):
        for _ in range(3):  # chunks with no upload open: one error for the run
            peer.channel.send(b"\x89PNG stray")
        peer.channel.send(json.dumps({"type": "stats", "id": "after-strays"}))
        await peer.reply("after-strays")
        send_upload(peer, "huge", "a.png", b"x" * (MAX_CHUNK_BYTES + 1),
                    chunk=MAX_CHUNK_BYTES + 1)  # one chunk too large
        # The second chunk goes past the size announced; the third is then a stray.
        send_upload(peer, "over", "b.png", picture, announced=MAX_CHUNK_BYTES + 10)
        await wait_for(lambda: len([e for e in peer.of_type("error") if "id" not in e]) >= 2)
        peer.channel.send(json.dumps({"type": "avatar-upload", "id": "first", "name": "c.png",
                                      "bytes": len(picture)}))
        # While "first" is open, another upload and a pick are refused...
        peer.channel.send(json.dumps({"type": "avatar-upload", "id": "second",
                                      "name": "d.png", "bytes": 100}))
        peer.channel.send(json.dumps({"type": "avatar", "id": "pick", "name": None}))
        send_upload(peer, "third", "e.png", picture)  # ...and these chunks complete "first"
        first = await peer.reply("first")
        await peer.reply("third")
        return peer, first, server.sessions[sid].settings.get().avatar

    server = server_with()
    peer, first, avatar = in_session(server, body)
    errors = peer.of_type("error")
    strays = [e for e in errors if "id" not in e]
    assert len(strays) == 2  # one per run of stray chunks
    assert all("not binary" in e["error"] and "avatar-upload" in e["error"] for e in strays)
    by_id = {e["id"]: e["error"] for e in errors if "id" in e}
    assert "at most 16384 bytes" in by_id["huge"]
    assert "more than the" in by_id["over"]
    assert all("still coming in" in by_id[i] for i in ("second", "pick", "third"))
    assert first["type"] == "settings" and first["settings"]["avatar"] == "c.png"
    assert avatar.source == "upload:" + hashlib.sha256(picture).hexdigest()


def test_headers_are_checked_before_any_chunk():
    assert read_header({"name": "me.jpg", "bytes": 10}, 100) == ("me.jpg", 10)
    assert read_header({"name": "x" * 500, "bytes": 1}, 100)[0] == "x" * 200
    for bad in ({"bytes": 10}, {"name": "", "bytes": 10}, {"name": "a", "bytes": 0},
                {"name": "a", "bytes": True}, {"name": "a", "bytes": 1.5},
                {"name": "a", "bytes": 101}):
        with pytest.raises(ValueError):
            read_header(bad, 100)


class FakeChannel:
    """The little of an ``RTCDataChannel`` a `ControlChannel` uses; keeps what it sent."""

    readyState = "open"  # noqa: N815 (aiortc's names)
    bufferedAmount = 0  # noqa: N815

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.listener = None

    def on(self, event: str, listener) -> None:
        self.listener = listener

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def close(self) -> None:
        self.readyState = "closed"


def test_an_upload_that_stops_half_way_is_dropped_and_frees_the_channel():
    async def scenario():
        async def upload(name: str, data: bytes) -> tuple[str, AvatarKey]:
            return name, AvatarKey("upload:x")

        fake = FakeChannel()
        target = ControlTarget(SettingsBox(LiveSettings()), AvatarNames(), dict,
                               upload_avatar=upload)
        channel = ControlChannel(fake, target,  # type: ignore[arg-type]
                                 ControlConfig(timing_interval_s=0.02, upload_idle_s=0.1))
        fake.listener(json.dumps({"type": "avatar-upload", "id": 1, "name": "a", "bytes": 5}))
        fake.listener(b"ab")
        await wait_for(lambda: any(m.get("id") == 1 for m in fake.sent))
        fake.listener(json.dumps({"type": "avatar-upload", "id": 2, "name": "b", "bytes": 2}))
        fake.listener(b"ok")
        await wait_for(lambda: any(m.get("id") == 2 for m in fake.sent))
        await channel.close()
        return fake.sent

    sent = asyncio.run(scenario())
    dropped = next(m for m in sent if m.get("id") == 1)
    assert dropped["type"] == "error" and "after 2 of 5 bytes" in dropped["error"]
    done = next(m for m in sent if m.get("id") == 2)
    assert done["type"] == "settings" and done["settings"]["avatar"] == "b"


def test_chunks_collect_up_to_the_announced_size():
    now = [0.0]
    upload = ChunkedUpload("u", "a.png", 5, clock=lambda: now[0])
    assert upload.add(b"abc") is False
    now[0] = 2.5
    assert upload.idle_s() == 2.5
    assert upload.add(b"de") is True and upload.data == b"abcde" and upload.idle_s() == 0.0
    with pytest.raises(ValueError, match="more than the 5 bytes"):
        upload.add(b"f")
    with pytest.raises(ValueError, match="at most"):
        ChunkedUpload("v", "b.png", 10**6).add(b"x" * (MAX_CHUNK_BYTES + 1))
