"""Signalling guards of `vicocam serve` and the life of a session with a real aiortc peer."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from aiohttp import web

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from networks.motion import MotionMode
from pipeline.stage import Stage
from stages.reenact.live_settings import AvatarKey, LiveSettings, LiveSettingsBox, OutputMode
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.peer_session import Session, SessionConfig, identity_factory
from stages.webrtc.server import HOST_REFUSED, ServerConfig, WebRTCServer
from stages.webrtc.uploads import AvatarLimits
from tests.webrtc.peers import TestPeer, api_client, post_offer, wait_for

MINIMAL_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


class ManualTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def png_bytes(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge picture."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def run(coro):
    return asyncio.run(coro)


# ---- offers ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "must be JSON"),
        (json.dumps({"sdp": MINIMAL_SDP}).encode(), "type"),
        (json.dumps({"sdp": 42, "type": "offer"}).encode(), "v=0"),
        (json.dumps({"sdp": "hello", "type": "offer"}).encode(), "v=0"),
        (json.dumps({"sdp": MINIMAL_SDP + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n",
                     "type": "offer"}).encode(), "no video"),
        (json.dumps({"sdp": MINIMAL_SDP + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
                            "a=rtpmap:96 VP8/90000\r\n",
                     "type": "offer"}).encode(), "ice-ufrag"),
    ],
)
def test_malformed_offers_get_400_with_the_reason(body, expected):
    server = WebRTCServer(ServerConfig())

    async def scenario():
        async with api_client(server.build_app()) as client:
            response = await client.post("/api/offer", data=body)
            return response.status, await response.json()

    status, reply = run(scenario())
    assert status == 400 and expected in reply["error"]
    assert server.sessions == {}


def test_oversized_offers_get_400():
    server = WebRTCServer(ServerConfig(max_offer_bytes=4096))
    big = MINIMAL_SDP + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + "a=x-pad:" + "y" * 8000 + "\r\n"

    async def scenario():
        async with api_client(server.build_app()) as client:
            response = await client.post("/api/offer", json={"sdp": big, "type": "offer"})
            return response.status, await response.json()

    status, reply = run(scenario())
    assert status == 400 and "too large" in reply["error"]


def test_oversized_chunked_offers_are_cut_off():
    server = WebRTCServer(ServerConfig(max_offer_bytes=4096))

    async def body():
        for _ in range(100):
            yield b"x" * 1024

    async def scenario():
        async with api_client(server.build_app()) as client:
            response = await client.post("/api/offer", data=body())
            return response.status, await response.json()

    status, reply = run(scenario())
    assert status == 400 and "too large" in reply["error"]


# ---- access -------------------------------------------------------------------------
def test_a_non_loopback_server_requires_its_token():
    server = WebRTCServer(ServerConfig(host="0.0.0.0"))
    assert server.token  # generated, since none was given
    token = server.token

    async def scenario():
        async with api_client(server.build_app()) as client:
            plain = await client.get("/api/config")
            wrong = await client.get("/api/config", headers={"Authorization": "Bearer nope"})
            bearer = await client.get("/api/config",
                                      headers={"Authorization": f"Bearer {token}"})
            query = await client.get(f"/api/config?token={token}")
            offer = await client.post("/api/offer", json={"sdp": "v=0", "type": "offer"})
            page = await client.get("/")
            return [r.status for r in (plain, wrong, bearer, query, offer, page)]

    # A token in an API URL is refused: it travels in the URL only once, to the
    # page, which trades it for a cookie (tests/webrtc/test_token_cookie.py).
    assert run(scenario()) == [401, 401, 200, 401, 401, 200]


def test_loopback_needs_no_token_unless_one_is_given():
    assert WebRTCServer(ServerConfig()).token is None
    assert WebRTCServer(ServerConfig(token="s3cret")).token == "s3cret"


def test_cross_site_requests_are_refused():
    server = WebRTCServer(ServerConfig())

    async def scenario():
        async with api_client(server.build_app()) as client:
            foreign = await client.get("/api/config", headers={"Origin": "http://evil.example"})
            same = await client.get("/api/config",
                                    headers={"Origin": f"http://{client.host}:{client.port}"})
            return foreign.status, same.status

    assert run(scenario()) == (403, 200)


def test_api_requests_are_rate_limited_per_client():
    clock = ManualTime()
    server = WebRTCServer(ServerConfig(api_rate_per_s=1.0, api_burst=3), clock=clock)

    async def scenario():
        async with api_client(server.build_app()) as client:
            statuses = [(await client.get("/api/config")).status for _ in range(4)]
            limited = await client.get("/api/config")
            clock.now += 2.0
            statuses.append((await client.get("/api/config")).status)
            return statuses, limited.status, limited.headers.get("Retry-After")

    statuses, limited, retry_after = run(scenario())
    assert statuses == [200, 200, 200, 429, 200]
    assert limited == 429 and retry_after is not None and int(retry_after) >= 1


def test_offers_have_their_own_stricter_limit():
    clock = ManualTime()
    server = WebRTCServer(ServerConfig(offer_rate_per_s=0.1, offer_burst=1), clock=clock)

    async def scenario():
        async with api_client(server.build_app()) as client:
            first = await client.post("/api/offer", data=b"x")
            second = await client.post("/api/offer", data=b"x")
            config = await client.get("/api/config")
            return first.status, second.status, config.status

    assert run(scenario()) == (400, 429, 200)


# ---- Host names (DNS rebinding) ------------------------------------------------------------
REBOUND = {"Host": "attacker.example:8080"}
VIDEO_SDP = MINIMAL_SDP + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"


def test_a_rebound_host_is_refused_before_any_handler_runs(tmp_path):
    (tmp_path / "mona.png").write_bytes(png_bytes(100, 120))
    built: list[list[Stage]] = []
    server = WebRTCServer(ServerConfig(avatars_dir=tmp_path, offer_rate_per_s=0.1,
                                       offer_burst=1), counting_factory(built),
                          clock=ManualTime())
    ran: list[str] = []

    async def probe(request: web.Request) -> web.Response:
        ran.append(request.path)
        return web.Response(text="ran")

    async def scenario():
        app = server.build_app()
        app.router.add_get("/probe", probe)
        # Under rebinding the page's Origin matches its Host: the Origin check passes.
        same_origin = {**REBOUND, "Origin": "http://attacker.example:8080"}
        async with api_client(app) as client:
            refused = [await client.get("/", headers=REBOUND),
                       await client.get("/static/app.js", headers=REBOUND),
                       await client.get("/api/config", headers=same_origin),
                       await client.get("/api/avatars/mona.png", headers=same_origin),
                       await client.post("/api/offer", headers=same_origin,
                                         json={"sdp": VIDEO_SDP, "type": "offer"}),
                       await client.get("/probe", headers=REBOUND)]
            replies = [(r.status, await r.json()) for r in refused]
            own_offer = await client.post("/api/offer", data=b"x")
            return replies, own_offer.status

    replies, own_offer = run(scenario())
    assert replies == [(403, {"error": HOST_REFUSED})] * 6
    assert "Host" in HOST_REFUSED and "--allow-host" in HOST_REFUSED
    assert ran == [] and built == [] and server.sessions == {}
    # 400, not 429: the refused offer never took the offer handler's only token.
    assert own_offer == 400


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::1]", "127.1.2.3", "LocalHost"])
def test_loopback_host_names_are_accepted_with_or_without_the_port(name):
    server = WebRTCServer(ServerConfig())

    async def scenario():
        async with api_client(server.build_app()) as client:
            hosts = (name, f"{name}:{client.port}")
            return [(await client.get(path, headers={"Host": host})).status
                    for host in hosts for path in ("/", "/api/config")]

    assert run(scenario()) == [200] * 4


def test_a_request_without_a_host_header_is_refused():
    server = WebRTCServer(ServerConfig())

    async def scenario():
        async with api_client(server.build_app()) as client:
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(b"GET /api/config HTTP/1.0\r\n\r\n")  # HTTP/1.0 needs no Host
            await writer.drain()
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            return reply

    reply = run(scenario())
    assert reply.startswith(b"HTTP/1.0 403") or reply.startswith(b"HTTP/1.1 403")


def test_names_given_with_allow_host_are_accepted():
    server = WebRTCServer(ServerConfig(allowed_hosts=("vicocam.test", "Laptop.Local:8080")))

    async def scenario():
        async with api_client(server.build_app()) as client:
            hosts = ["vicocam.test", f"VICOCAM.test:{client.port}", "laptop.local:9",
                     "localhost", "other.test", "test"]
            return [(await client.get("/api/config", headers={"Host": h})).status
                    for h in hosts]

    assert run(scenario()) == [200, 200, 200, 200, 403, 403]


def test_off_loopback_the_host_is_checked_only_when_names_were_given():
    auth = {"Authorization": "Bearer s3cret"}
    hosts = ["gpu-box:8080", "attacker.example", "localhost"]

    async def statuses(config: ServerConfig) -> list[int]:
        async with api_client(WebRTCServer(config).build_app()) as client:
            return [(await client.get("/api/config", headers={**auth, "Host": h})).status
                    for h in hosts]

    open_to_all = ServerConfig(host="0.0.0.0", token="s3cret")
    limited = dataclasses.replace(open_to_all, allowed_hosts=("gpu-box",))
    assert run(statuses(open_to_all)) == [200, 200, 200]  # the token guards it
    assert run(statuses(limited)) == [200, 403, 200]


@pytest.mark.parametrize("name", ["", "http://gpu-box/", "gpu box", "[::1"])
def test_allowed_hosts_must_be_host_names(name):
    with pytest.raises(ValueError, match="allowed hosts"):
        ServerConfig(allowed_hosts=(name,))


# ---- settings and avatars -----------------------------------------------------------------
def server_with_idle_session(prepare_avatar=None, **config):
    server = WebRTCServer(ServerConfig(**config), prepare_avatar=prepare_avatar)
    session = Session("s1", identity_factory, SessionConfig(), initial=server.config.settings)
    server.sessions["s1"] = session
    return server, session


def test_the_page_gets_the_choices_and_the_settings_sessions_start_with():
    start = LiveSettings(avatar=AvatarKey("person:3"), strength=0.5, output=OutputMode.CROP)
    server = WebRTCServer(ServerConfig(settings=start))

    async def scenario():
        async with api_client(server.build_app()) as client:
            return await (await client.get("/api/config")).json()

    config = run(scenario())
    assert config["modes"] == ["absolute", "relative", "cross"]
    assert config["outputs"] == ["crop", "paste", "side_by_side"]
    assert config["settings"] == {"avatar": "person:3", "strength": 0.5, "reset_count": 0,
                                  "mode": None, "output": "crop"}
    assert config["notice"] is None  # nothing to warn about unless the command says so


def test_settings_change_the_sessions_live_settings_whole():
    server, session = server_with_idle_session()
    seen: list[LiveSettings] = []
    session.settings.subscribe(seen.append)

    async def scenario():
        async with api_client(server.build_app()) as client:
            ok = await client.post("/api/sessions/s1/settings", json={"strength": 1.5})
            reset = await client.post("/api/sessions/s1/settings", json={"reset": True})
            both = await client.post("/api/sessions/s1/settings",
                                     json={"mode": "relative", "output": "crop", "strength": 0})
            bad = [await client.post("/api/sessions/s1/settings", json=body) for body in (
                {"strength": 7}, {"strength": True}, {"colour": "red"}, {"mode": "sideways"},
                {"output": None}, {"mode": 3})]
            missing = await client.post("/api/sessions/nope/settings", json={"reset": True})
            return ok.status, reset.status, await both.json(), [b.status for b in bad], \
                missing.status

    ok, reset, reply, bad, missing = run(scenario())
    assert (ok, reset, missing) == (200, 200, 404)
    assert bad == [400] * 6
    assert reply == {"avatar": None, "strength": 0.0, "reset_count": 1, "mode": "relative",
                     "output": "crop"}
    assert session.settings.get() == LiveSettings(mode=MotionMode.RELATIVE, strength=0.0,
                                                  output=OutputMode.CROP, reset_count=1)
    assert len(seen) == 3  # one whole replacement per accepted request, none for refusals


def test_avatar_uploads_are_validated_before_reaching_the_session():
    limits = AvatarLimits(max_bytes=200_000, min_side=64, max_side=1024)
    server, session = server_with_idle_session(avatar_limits=limits)
    good = png_bytes(128, 96)

    async def post(client, data):
        response = await client.post("/api/sessions/s1/avatar", data=data,
                                     headers={"Content-Type": "image/png",
                                              "X-Filename": "me.png"})
        return response.status, await response.json()

    async def scenario():
        async with api_client(server.build_app()) as client:
            results = {"good": await post(client, good)}
            results["garbage"] = await post(client, b"\x89PNG nonsense")
            results["small"] = await post(client, png_bytes(32, 32))
            results["bomb"] = await post(client, bomb_png(60_000, 60_000))
            results["damaged"] = await post(client, good[:60])
            results["huge"] = await post(client, b"\xff\xd8" + b"\0" * 300_000)
            return results

    results = run(scenario())
    assert results["good"] == (200, {"avatar": "me.png", "width": 128, "height": 96})
    assert "PNG or JPEG" in results["garbage"][1]["error"]
    assert "at least 64" in results["small"][1]["error"]
    assert "at most 1024" in results["bomb"][1]["error"]
    assert "damaged" in results["damaged"][1]["error"]
    assert results["huge"][0] == 400 and "MB" in results["huge"][1]["error"]
    avatar = session.settings.get().avatar
    # An in-memory avatar named by the digest of the bytes: the same picture, the same key.
    assert avatar == AvatarKey("upload:" + hashlib.sha256(good).hexdigest())
    assert avatar.image is not None and avatar.image.shape == (96, 128, 3)


def test_preset_avatars_are_listed_and_picked_by_name_only(tmp_path):
    (tmp_path / "mona.png").write_bytes(png_bytes(100, 120))
    (tmp_path / "notes.txt").write_text("not an avatar")
    default = AvatarKey("person:1")
    server, session = server_with_idle_session(avatars_dir=tmp_path,
                                               settings=LiveSettings(avatar=default))

    async def scenario():
        async with api_client(server.build_app()) as client:
            listing = await (await client.get("/api/avatars")).json()
            pick = await client.post("/api/sessions/s1/avatar", json={"name": "mona.png"})
            picked = session.settings.get().avatar
            escape = await client.post("/api/sessions/s1/avatar",
                                       json={"name": "../../etc/passwd"})
            picture = await client.get("/api/avatars/mona.png")
            back = await client.post("/api/sessions/s1/avatar", json={"name": None})
            return listing, picked, [r.status for r in (pick, escape, picture, back)]

    listing, picked, statuses = run(scenario())
    assert listing == {"avatars": ["mona.png"]}
    assert statuses == [200, 400, 200, 200]
    digest = hashlib.sha256((tmp_path / "mona.png").read_bytes()).hexdigest()
    assert picked == AvatarKey("upload:" + digest) and picked.image.shape == (120, 100, 3)
    assert session.settings.get().avatar == default  # {"name": null}: the server's avatar


def test_an_avatar_the_model_cannot_use_is_refused_with_the_reason():
    tried: list[AvatarKey] = []

    def prepare(key: AvatarKey) -> None:
        tried.append(key)
        raise ValueError("no face found in the portrait; use a picture with one face")

    server, session = server_with_idle_session(prepare_avatar=prepare)

    async def scenario():
        async with api_client(server.build_app()) as client:
            response = await client.post("/api/sessions/s1/avatar", data=png_bytes(128, 96),
                                         headers={"Content-Type": "image/png"})
            return response.status, await response.json()

    status, reply = run(scenario())
    assert status == 400 and "no face" in reply["error"]
    assert len(tried) == 1 and tried[0].image is not None
    assert session.settings.get().avatar is None  # the session keeps what it had


# ---- sessions with a real peer ------------------------------------------------------------
FAST = SessionConfig(stall_timeout_s=1.0, connect_timeout_s=15.0, watchdog_interval_s=0.1)


def counting_factory(built: list[list[Stage]], boxes: list[LiveSettingsBox] | None = None):
    def factory(settings: LiveSettingsBox) -> list[Stage]:
        stages = identity_factory(settings)
        built.append(stages)
        if boxes is not None:
            boxes.append(settings)
        return stages

    return factory


async def connect(client, peer: TestPeer):
    return (await post_offer(client, peer))["session"]


async def streaming(client) -> tuple[TestPeer, str]:
    """A new peer connected, once its first frame came back: ``(peer, session id)``."""
    peer = TestPeer()
    sid = await connect(client, peer)
    await asyncio.wait_for(peer.got_frame.wait(), 30)
    return peer, sid


@pytest.mark.parametrize("encode_in_sink", [True, False])
def test_a_session_returns_video_and_is_freed_when_the_peer_closes(encode_in_sink):
    built: list[list[Stage]] = []
    boxes: list[LiveSettingsBox] = []
    start = LiveSettings(avatar=AvatarKey("person:2"), output=OutputMode.CROP)
    session_config = dataclasses.replace(FAST, encode_in_sink=encode_in_sink)
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=session_config,
                                       max_sessions=1, settings=start),
                          counting_factory(built, boxes))

    async def scenario():
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                peer, sid = await streaming(client)
                await wait_for(lambda: len([i for i in peer.returned if i is not None]) >= 5)
                busy = await client.post("/api/offer",
                                         json={"sdp": await TestPeer().offer(), "type": "offer"})
                stats = await (await client.get(f"/api/sessions/{sid}/stats")).json()
                session = server.sessions[sid]
                await peer.close()
                await wait_for(lambda: not server.sessions)
                return peer.returned, busy.status, stats, session

    returned, busy, stats, session = run(scenario())
    indices = [i for i in returned if i is not None]
    assert indices == sorted(indices) and len(set(indices)) >= 5  # identity: stamps come back
    assert busy == 503
    assert stats["frames_received"] > 0 and stats["frames_sent"] > 0
    # VP8 frames encoded in the sink decode in order at the peer (the stamps above).
    assert stats["encoder"] == ("sink" if encode_in_sink else "aiortc")
    assert stats["encoded_dropped"] == 0
    # aiortc's decoding of each received frame, timed from its last packet (the
    # decoder's thread and a hop to the loop: a fraction of a frame interval here).
    assert 0 <= stats["receive_ms"]["p50"] <= stats["receive_ms"]["p95"] < 1000
    # A sink that encodes gets a thread of its own (else the last segment's, when on
    # more than one core).
    last = session._pipeline.segments[-1].stages
    assert last[-1].name == "webrtc_out"
    if encode_in_sink:
        assert len(last) == 1
    assert (set(stats["stalls_in"]) == set(stats["stalls_out"]) == set(stats["stalls_encoded"])
            == {"count", "total_ms"})
    assert session.closed.is_set() and session.close_reason is not None
    assert len(built) == 1
    # The factory got the session's own box, starting from the server's settings.
    assert boxes == [session.settings] and boxes[0].get() == start


def test_a_peer_that_stops_sending_is_closed_as_stalled():
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=FAST))

    async def scenario():
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                peer, sid = await streaming(client)
                session = server.sessions[sid]
                peer.track.pause()  # connected, but no video any more
                await wait_for(lambda: not server.sessions)
                await peer.close()
                return session

    session = run(scenario())
    assert session.close_reason is not None and "no video for" in session.close_reason


def test_a_closed_session_is_collected_soon_after_it_ends():
    """aiortc's connection cycles are freed by the server's collection, not Python's someday."""
    import gc
    import weakref

    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=FAST))

    async def scenario():
        with ice_host_addresses(["127.0.0.1"]):
            async with api_client(server.build_app()) as client:
                peer, sid = await streaming(client)
                connection = weakref.ref(server.sessions[sid]._pc)
                await peer.close()
                await wait_for(lambda: not server.sessions)
                await wait_for(lambda: connection() is None, limit_s=10)
                return connection

    gc.disable()  # only the server's own collection may free it
    try:
        assert run(scenario())() is None
    finally:
        gc.enable()
