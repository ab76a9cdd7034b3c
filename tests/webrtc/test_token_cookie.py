"""The access token travels once: the printed URL trades it for an HttpOnly cookie,
and it never reaches a log line."""

from __future__ import annotations

import asyncio
import logging
import ssl
from http.cookies import SimpleCookie

import aiohttp
import pytest

pytest.importorskip("aiortc")

from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer, redacted
from stages.webrtc.tls import self_signed
from tests.webrtc.peers import api_client

TOKEN = "tok-" + "x7" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run(coro):
    return asyncio.run(coro)


def a_cookie(response: aiohttp.ClientResponse):
    """The only cookie ``response`` sets, as a ``Morsel``; ``None`` when it sets none."""
    header = response.headers.getall("Set-Cookie", [])
    assert len(header) <= 1, header
    return next(iter(SimpleCookie(header[0]).values())) if header else None


def test_the_printed_url_sets_an_httponly_cookie_and_drops_the_token():
    server = WebRTCServer(ServerConfig(host="0.0.0.0", token=TOKEN))

    async def scenario():
        async with api_client(server.build_app()) as client:
            response = await client.get(f"/?token={TOKEN}&autostart=1", allow_redirects=False)
            return response.status, response.headers, a_cookie(response)

    status, headers, cookie = run(scenario())
    assert status == 303 and headers["Location"] == "/?autostart=1"
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert cookie is not None and cookie.value == TOKEN and cookie["path"] == "/"
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # plain HTTP: a Secure cookie would never come back
    assert cookie.key.startswith("vicocam-token-")


def test_without_token_or_cookie_the_api_says_401_and_with_either_200():
    server = WebRTCServer(ServerConfig(host="0.0.0.0", token=TOKEN))

    async def scenario():
        async with api_client(server.build_app()) as client:
            bare = await client.get("/api/config")
            in_query = await client.get(f"/api/config?token={TOKEN}")
            bearer = await client.get("/api/config", headers=AUTH)
            wrong = await client.get("/?token=wrong", allow_redirects=False)
            wrong_cookie = a_cookie(wrong)
            after_wrong = await client.get("/api/config")
            page = await client.get(f"/?token={TOKEN}")  # follows the redirect
            cookie = await client.get("/api/config")
            return ([r.status for r in (bare, in_query, bearer, wrong, after_wrong, page,
                                        cookie)], wrong_cookie, str(page.url))

    found, wrong_cookie, landed = run(scenario())
    assert found == [401, 401, 200, 401, 401, 200, 200]
    assert wrong_cookie is None
    assert "token" not in landed and landed.endswith("/")


def test_a_server_without_a_token_only_drops_it_from_the_url():
    async def scenario():
        async with api_client(WebRTCServer(ServerConfig()).build_app()) as client:
            response = await client.get("/?token=anything", allow_redirects=False)
            return response.status, response.headers["Location"], a_cookie(response)

    assert run(scenario()) == (303, "/", None)


def test_the_cookie_is_secure_over_https(tmp_path):
    files = self_signed(tmp_path, ["localhost", "127.0.0.1"]).files
    server = WebRTCServer(ServerConfig(port=0, token=TOKEN, tls=files))

    async def scenario(url):
        context = ssl.create_default_context(cafile=files.cert)
        jar = aiohttp.CookieJar(unsafe=True)  # unsafe = cookies of an IP address too
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            first = await http.get(url, ssl=context, allow_redirects=False)
            cookie = a_cookie(first)
            await http.get(url, ssl=context)
            config = await http.get(url.split("?")[0] + "api/config", ssl=context)
            return cookie, config.status

    with ServerThread(server) as url:
        assert url.startswith("https://") and f"?token={TOKEN}" in url
        cookie, status = run(scenario(url))
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert status == 200


def test_the_token_never_reaches_the_log(caplog):
    server = WebRTCServer(ServerConfig(port=0, host="127.0.0.1", token=TOKEN))

    async def scenario(url):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            base = url.split("?")[0]
            for target in (url, url + "&autostart=1", base + "api/config",
                           base + "api/avatars", base + "static/app.js", base + "?token=bad"):
                async with http.get(target) as response:
                    await response.read()

    caplog.set_level(logging.DEBUG)
    with ServerThread(server) as url:
        run(scenario(url))
    lines = [record.getMessage() for record in caplog.records]
    access = [line for line in lines if "GET /" in line]
    # The access log is on and saw the token URLs, redacted.
    assert any("/?token=REDACTED" in line for line in access), access
    assert any("/api/config 200" in line for line in access), access
    assert not [line for line in lines if TOKEN in line]
    assert TOKEN not in caplog.text


def test_redaction_keeps_everything_but_the_token():
    from yarl import URL

    assert redacted(URL("/?token=abc&autostart=1")) == "/?token=REDACTED&autostart=1"
    assert redacted(URL("/api/config")) == "/api/config"
    assert redacted(URL("/x?a=1&token=t&token=u")) == "/x?a=1&token=REDACTED&token=REDACTED"


def test_token_guesses_at_the_page_are_rate_limited():
    server = WebRTCServer(ServerConfig(host="0.0.0.0", token=TOKEN, api_burst=2,
                                       api_rate_per_s=0.01))

    async def scenario():
        async with api_client(server.build_app()) as client:
            return [(await client.get(f"/?token=guess{i}", allow_redirects=False)).status
                    for i in range(3)]

    assert run(scenario()) == [401, 401, 429]
