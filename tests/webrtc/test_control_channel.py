"""The session's control channel with a real aiortc peer: settings change the next frames,
bad messages get error replies and the session goes on, stats and frame timing are pushed,
and an avatar uploaded over HTTP is named on the channel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("aiortc")

from av import VideoFrame

from pipeline.frame import Frame
from pipeline.stage import Stage, StageBase
from stages.reenact.live_settings import LiveSettingsBox
from stages.stamp import read_stamp
from stages.webrtc.aiortc_patches import RTP_MODULUS, received_rtp_origin
from stages.webrtc.control_channel import CONTROL_LABEL
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.server import ServerConfig, WebRTCServer
from tests.webrtc.peers import TestPeer, api_client, post_offer, wait_for

FAST = SessionConfig(stall_timeout_s=2.0, connect_timeout_s=15.0, watchdog_interval_s=0.1)


class StrengthPaint(StageBase):
    """Paints the whole picture grey 100 x strength: the settings show in every frame."""

    name = "strength_paint"
    blocking = False

    def __init__(self, settings: LiveSettingsBox) -> None:
        self.settings = settings

    def process(self, frame: Frame) -> Frame:
        frame.image = np.full_like(frame.image, round(100 * self.settings.get().strength))
        return frame


def paint_factory(settings: LiveSettingsBox) -> list[Stage]:
    return [StrengthPaint(settings)]


class ChannelPeer(TestPeer):
    """A `TestPeer` with the page's control channel; keeps every message and frame level."""

    def __init__(self) -> None:
        super().__init__()
        self.channel = self.pc.createDataChannel(CONTROL_LABEL)
        self.messages: list[dict[str, Any]] = []
        self.levels: list[float] = []
        self.shown: list[tuple[int, int | None]] = []  # (pts, stamped index) of returned frames
        self.channel.on("message", lambda data: self.messages.append(json.loads(data)))

    def _on_frame(self, frame: object) -> None:
        if isinstance(frame, VideoFrame):
            image = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
            self.levels.append(float(image.mean()))
            self.shown.append((frame.pts, read_stamp(image)))
            self.got_frame.set()

    def record_sent_timestamps(self) -> list[int]:
        """The RTP timestamps this peer writes on its video from now on, read off the wire."""
        from aiortc.rtp import RtpPacket, is_rtcp

        sender = self.pc.getSenders()[0]
        transport = sender.transport
        send, seen = transport._send_rtp, []

        async def recording(data: bytes) -> None:
            if not is_rtcp(data):
                packet = RtpPacket.parse(data)
                if packet.ssrc == sender._ssrc and packet.timestamp not in seen[-3:]:
                    seen.append(packet.timestamp)
            await send(data)

        transport._send_rtp = recording
        return seen

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def reply(self, request_id: Any) -> dict[str, Any]:
        await wait_for(lambda: any(m.get("id") == request_id for m in self.messages))
        return next(m for m in self.messages if m.get("id") == request_id)


async def connected(client, peer: ChannelPeer) -> str:
    sid = (await post_offer(client, peer))["session"]
    await asyncio.wait_for(peer.got_frame.wait(), 30)
    await wait_for(lambda: peer.channel.readyState == "open")
    return sid


def in_session(server: WebRTCServer, body, prepare=None):
    """Run ``body(client, peer, sid)`` against a fresh session of ``server``; its result.

    ``prepare(peer)`` runs before the peer's offer.
    """
    async def scenario():
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                peer = ChannelPeer()
                if prepare is not None:
                    prepare(peer)
                try:
                    return await body(client, peer, await connected(client, peer))
                finally:
                    await peer.close()
                    await wait_for(lambda: not server.sessions)

    return asyncio.run(scenario())


def painting_server(**config) -> WebRTCServer:
    return WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=FAST, **config),
                        paint_factory)


def test_a_strength_sent_on_the_channel_changes_the_next_frames():
    async def body(client, peer, sid):
        await wait_for(lambda: len(peer.levels) >= 5)
        before = list(peer.levels)
        peer.channel.send(json.dumps({"type": "settings", "id": 1,
                                      "settings": {"strength": 0.5}}))
        reply = await peer.reply(1)
        seen = len(peer.levels)
        # A few frames were in flight; the change shows within a second of video.
        await wait_for(lambda: len(peer.levels) >= seen + 30)
        return before, peer.levels[seen:], reply

    before, after, reply = in_session(painting_server(), body)
    assert reply["type"] == "settings" and reply["settings"]["strength"] == 0.5
    assert all(abs(level - 100) < 4 for level in before)
    assert abs(np.median(after) - 50) < 4
    assert abs(after[-1] - 50) < 4


BAD_MESSAGES = [
    "not json",
    "[1, 2]",
    json.dumps({"type": "launch"}),
    json.dumps({"type": "settings", "id": "s", "settings": {"strength": 7}}),
    json.dumps({"type": "settings", "settings": {"colour": "red"}}),
    json.dumps({"type": "settings"}),
    json.dumps({"type": "stats", "id": True}),
    json.dumps({"type": "avatar", "id": 9, "name": "../../etc/passwd"}),
    json.dumps({"type": "avatar"}),
    "[" * 3000 + "]" * 1000,
    "x" * 5000,
    b"\x00\x01binary",
]


def test_bad_messages_get_an_error_reply_and_the_session_goes_on():
    async def body(client, peer, sid):
        session = server.sessions[sid]
        for message in BAD_MESSAGES:
            peer.channel.send(message)
        await wait_for(lambda: len(peer.of_type("error")) >= len(BAD_MESSAGES))
        frames = len(peer.levels)
        peer.channel.send(json.dumps({"type": "settings", "id": 2,
                                      "settings": {"output": "crop", "strength": 1.5}}))
        good = await peer.reply(2)
        await wait_for(lambda: len(peer.levels) > frames + 10)
        return peer.of_type("error"), good, session, session.close_reason is None

    server = painting_server()
    errors, good, session, open_then = in_session(server, body)
    assert len(errors) == len(BAD_MESSAGES)
    assert all(isinstance(e["error"], str) and e["error"] for e in errors)
    reasons = " | ".join(e["error"] for e in errors)
    for expected in ("JSON object", "unknown message type", "strength must be within",
                     "send any of", "message id", "no preset avatar", '"name": null',
                     "too long", "not binary"):
        assert expected in reasons
    assert {e.get("id") for e in errors} >= {"s", 9}  # replies carry the id when one was usable
    assert good["settings"]["strength"] == 1.5 and good["settings"]["output"] == "crop"
    assert open_then  # the bad messages closed nothing
    assert session.settings.get().strength == 1.5


def test_a_flood_of_messages_is_refused_beyond_the_rate():
    async def body(client, peer, sid):
        for i in range(60):
            peer.channel.send(json.dumps({"type": "stats", "id": i}))
        await wait_for(lambda: len([m for m in peer.messages if "id" in m]) >= 60)
        return [m for m in peer.messages if "id" in m]

    replies = in_session(painting_server(), body)
    refused = [m for m in replies if m["type"] == "error"]
    # A burst of 40 passes; the rest, sent at once, finds at most a few new tokens.
    assert 5 <= len(refused) <= 20
    assert all("slow down" in m["error"] for m in refused)


def test_stats_are_pushed_as_the_stats_route_has_them():
    async def body(client, peer, sid):
        await wait_for(lambda: len(peer.of_type("stats")) >= 2)
        http = await (await client.get(f"/api/sessions/{sid}/stats")).json()
        return peer.of_type("stats"), http

    stats, http = in_session(painting_server(), body)
    assert set(stats[-1]["stats"]) == set(http)
    assert stats[-1]["stats"]["frames_sent"] > 0


def near(timestamp: int, known) -> int | None:
    """The one of ``known`` within 2 ticks of ``timestamp``: PyAV's decoders round pts."""
    return next((t for t in known if abs(t - timestamp) <= 2), None)


def test_timing_names_each_returned_frame_and_its_camera_frame_by_wire_timestamps():
    camera_wire: list[list[int]] = []  # the peer's camera frames' RTP timestamps, in order

    async def body(client, peer, sid):
        await wait_for(lambda: sum(len(m["frames"]) for m in peer.of_type("timing")) >= 30)
        await asyncio.sleep(0.3)  # the last frames named reach the peer
        back_origin = received_rtp_origin(peer.pc)
        returned = {(back_origin + pts) % RTP_MODULUS: index for pts, index in peer.shown
                    if index is not None}  # a stamp blurred by the codec reads as None
        return [p for m in peer.of_type("timing") for p in m["frames"]], returned

    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=FAST))  # identity
    pairs, returned = in_session(
        server, body, lambda peer: camera_wire.append(peer.record_sent_timestamps()))
    wire = camera_wire[0]
    # The camera frame each returned frame was made from, as the peer wrote it on the
    # wire (within the tick a decoder's pts may lose)...
    assert all(near(source, wire) is not None for _, source in pairs)
    # ... is the frame whose stamp the returned picture carries (camera frames are 3000
    # ticks apart, from index 0).
    checked = [(returned[near(sent, returned)], round((source - wire[0]) % RTP_MODULUS / 3000))
               for sent, source in pairs if near(sent, returned) is not None]
    assert len(checked) >= 25
    assert all(stamped == index for stamped, index in checked), checked


def png_bytes(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def test_avatars_picked_on_the_channel_or_uploaded_are_named_on_it(tmp_path):
    (tmp_path / "mona.png").write_bytes(png_bytes(100, 120))

    async def body(client, peer, sid):
        peer.channel.send(json.dumps({"type": "avatar", "id": 1, "name": "mona.png"}))
        picked = await peer.reply(1)
        await client.post(f"/api/sessions/{sid}/avatar", data=png_bytes(128, 96),
                          headers={"Content-Type": "image/png", "X-Filename": "me.png"})
        await wait_for(lambda: any(m["settings"]["avatar"] == "me.png"
                                   for m in peer.of_type("settings") if "id" not in m))
        peer.channel.send(json.dumps({"type": "avatar", "id": 2, "name": None}))
        return picked, await peer.reply(2), peer.of_type("settings")

    picked, back, settings = in_session(painting_server(avatars_dir=tmp_path), body)
    assert picked["settings"]["avatar"] == "mona.png"
    assert back["settings"]["avatar"] is None  # no server avatar configured: none named
    # One message per change: the replies are not pushed a second time.
    assert [m["settings"]["avatar"] for m in settings] == ["mona.png", "me.png", None]


def test_a_second_data_channel_is_closed_and_the_first_still_answers():
    async def body(client, peer, sid):
        extra = peer.pc.createDataChannel("other")
        await wait_for(lambda: extra.readyState == "closed")
        peer.channel.send(json.dumps({"type": "stats", "id": 5}))
        return await peer.reply(5)

    reply = in_session(painting_server(), body)
    assert reply["type"] == "stats"
