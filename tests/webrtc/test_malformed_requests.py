"""Every route answers malformed input with a 4xx and fixed text: no 500, no parser's words."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from aiohttp import web

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from stages.webrtc.peer_session import Session, SessionConfig, identity_factory
from stages.webrtc.server import (
    CROSS_SITE,
    MAX_CONTROL_BYTES,
    REQUEST_FAILED,
    ServerConfig,
    WebRTCServer,
)
from stages.webrtc.uploads import AvatarLimits
from tests.webrtc.peers import api_client

INTERNAL_TEXT = re.compile(r"Error|Exception|Traceback|File \"|line \d|column \d|char \d|codec|"
                           r"\\u|\\x|Expecting|surrogate")
MINIMAL_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 5000 + b"]" * 5000  # within every cap, past the JSON parser's recursion limit

# (route, body, headers); the session "s1" exists, "gone" does not.
CASES = {
    "offer: not JSON": ("POST /api/offer", b"{not json", JSON),
    "offer: bad UTF-8": ("POST /api/offer", b"\xff\xfe\xfd", JSON),
    "offer: unknown charset": ("POST /api/offer", b'{"a": 1}',
                               {"Content-Type": "application/json; charset=bogus"}),
    "offer: deep nesting": ("POST /api/offer", DEEP, JSON),
    "offer: a list": ("POST /api/offer", b"[1, 2]", JSON),
    "offer: sdp a number": ("POST /api/offer", b'{"sdp": 5, "type": "offer"}', JSON),
    "offer: type missing": ("POST /api/offer", json.dumps({"sdp": MINIMAL_SDP}).encode(), JSON),
    "offer: lone surrogate": ("POST /api/offer",
                              json.dumps({"sdp": MINIMAL_SDP + "s=\ud800", "type": "offer"})
                              .encode(), JSON),
    "offer: empty": ("POST /api/offer", b"", JSON),
    "offer: huge": ("POST /api/offer", b"x" * 200_000, JSON),
    "settings: not JSON": ("POST /api/sessions/s1/settings", b"{not json", JSON),
    "settings: bad UTF-8": ("POST /api/sessions/s1/settings", b"\xff\xfe", JSON),
    "settings: unknown charset": ("POST /api/sessions/s1/settings", b'{"strength": "1"}',
                                  {"Content-Type": "application/json; charset=bogus"}),
    "settings: deep nesting": ("POST /api/sessions/s1/settings", DEEP, JSON),
    "settings: a list": ("POST /api/sessions/s1/settings", b"[1]", JSON),
    "settings: strength a string": ("POST /api/sessions/s1/settings", b'{"strength": "x"}', JSON),
    "settings: strength NaN": ("POST /api/sessions/s1/settings", b'{"strength": NaN}', JSON),
    "settings: mode a number": ("POST /api/sessions/s1/settings", b'{"mode": 3}', JSON),
    "settings: huge": ("POST /api/sessions/s1/settings", b" " * (MAX_CONTROL_BYTES + 1), JSON),
    "settings: no such session": ("POST /api/sessions/gone/settings", b"{}", JSON),
    "avatar pick: not JSON": ("POST /api/sessions/s1/avatar", b"{not json", JSON),
    "avatar pick: deep nesting": ("POST /api/sessions/s1/avatar", DEEP, JSON),
    "avatar pick: bad UTF-8": ("POST /api/sessions/s1/avatar", b"\xff\xfe", JSON),
    "avatar pick: name a list": ("POST /api/sessions/s1/avatar", b'{"name": [1]}', JSON),
    "avatar pick: no name": ("POST /api/sessions/s1/avatar", b"{}", JSON),
    "avatar pick: huge": ("POST /api/sessions/s1/avatar", b" " * (MAX_CONTROL_BYTES + 1), JSON),
    "avatar upload: garbage": ("POST /api/sessions/s1/avatar", b"\x89PNG nonsense",
                               {"Content-Type": "image/png"}),
    "avatar upload: empty": ("POST /api/sessions/s1/avatar", b"", {"Content-Type": "image/png"}),
    "avatar upload: huge": ("POST /api/sessions/s1/avatar", b"\xff\xd8" + b"\0" * 300_000,
                            {"Content-Type": "image/jpeg"}),
    "avatar: no such session": ("POST /api/sessions/gone/avatar", b'{"name": null}', JSON),
    "preset: no such picture": ("GET /api/avatars/..%2f..%2fetc%2fpasswd", b"", {}),
    "stats: no such session": ("GET /api/sessions/gone/stats", b"", {}),
    "hang-up: no such session": ("DELETE /api/sessions/gone", b"", {}),
    "origin: not a URL": ("GET /api/config", b"", {"Origin": "http://["}),
    "origin: another site": ("GET /api/config", b"", {"Origin": "http://evil.example"}),
}


def server_with_session() -> WebRTCServer:
    limits = AvatarLimits(max_bytes=200_000)
    server = WebRTCServer(ServerConfig(avatar_limits=limits, api_burst=10_000,
                                       offer_burst=10_000, offer_rate_per_s=100.0))
    server.sessions["s1"] = Session("s1", identity_factory, SessionConfig())
    return server


def assert_fixed_4xx(status: int, text: str) -> None:
    assert 400 <= status < 500, (status, text)
    reply = json.loads(text)
    assert set(reply) == {"error"}, reply
    assert not INTERNAL_TEXT.search(reply["error"]), reply["error"]


@pytest.fixture(scope="module")
def answers() -> dict[str, tuple[int, str]]:
    """Every case's status and text, from one server."""
    server = server_with_session()

    async def scenario() -> dict[str, tuple[int, str]]:
        out = {}
        async with api_client(server.build_app()) as client:
            for name, (route, body, headers) in CASES.items():
                method, path = route.split(" ", 1)
                response = await client.request(method, path, data=body, headers=headers)
                out[name] = (response.status, await response.text())
        return out

    return asyncio.run(scenario())


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_requests_get_a_fixed_4xx(answers, case):
    assert_fixed_4xx(*answers[case])


def test_the_body_caps_and_refusals_say_what_to_send(answers):
    assert "too large" in answers["settings: huge"][1]
    assert "JSON" in answers["settings: bad UTF-8"][1]
    assert json.loads(answers["origin: not a URL"][1]) == {"error": CROSS_SITE}
    assert answers["stats: no such session"][0] == 404


def raw_request(server: WebRTCServer, head: bytes) -> bytes:
    """Send one request's raw bytes (headers aiohttp's client would not write); the reply.

    ``PORT`` in ``head`` becomes the server's port.
    """
    async def scenario() -> bytes:
        async with api_client(server.build_app()) as client:
            reader, writer = await asyncio.open_connection(client.host, client.port)
            head_ = head.replace(b"PORT", str(client.port).encode())
            writer.write(head_ + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            return reply

    return asyncio.run(scenario())


@pytest.mark.parametrize("header", [b"Authorization: Bearer \xff\xfe",
                                    b"Cookie: vicocam-token-PORT=\xff",
                                    b"Authorization: Bearer \xed\xa0\x80"])
def test_a_token_that_is_not_utf8_is_a_401(header):
    server = WebRTCServer(ServerConfig(token="s3cret"))
    reply = raw_request(server, b"GET /api/config HTTP/1.1\r\n" + header)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), reply
    assert_fixed_4xx(401, body.decode())


@pytest.mark.parametrize("query", [b"%ff", b"%ed%a0%80", b"%00"])
def test_a_page_token_that_is_not_utf8_is_a_401(query):
    server = WebRTCServer(ServerConfig(token="s3cret"))
    reply = raw_request(server, b"GET /?token=" + query + b" HTTP/1.1")
    assert reply.startswith(b"HTTP/1.1 401"), reply


def test_what_nobody_foresaw_is_a_fixed_500_logged_with_its_traceback(caplog):
    server = WebRTCServer(ServerConfig())

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("engine file /secret/path.plan is corrupt")

    async def scenario() -> tuple[int, dict]:
        app = server.build_app()
        app.router.add_get("/api/broken", broken)
        async with api_client(app) as client:
            response = await client.get("/api/broken")
            return response.status, await response.json()

    with caplog.at_level(logging.ERROR, logger="stages.webrtc.server"):
        status, reply = asyncio.run(scenario())
    assert (status, reply) == (500, {"error": REQUEST_FAILED})
    assert any(r.exc_info and "corrupt" in str(r.exc_info[1]) for r in caplog.records)
