"""STUN and TURN servers with their credentials: the entries, the TURN REST API credentials
minted from coturn's shared secret, and how they reach a session's peer connection, the
config answer and `vicocam client` (against a fake TURN server that checks them as coturn
does)."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import pickle
import time

import pytest

pytest.importorskip("aiortc")

from stages.io import PatternConfig, PatternSource
from stages.webrtc.client import ClientConfig, ServerRefusedError, _ice_servers, _Run, run_client
from stages.webrtc.ice_servers import (
    DEFAULT_TURN_TTL_S,
    IceServer,
    TurnRestServer,
    is_turn,
    resolve_all,
    rest_credentials,
    rtc_ice_servers,
    url_scheme,
)
from stages.webrtc.peer_session import Session, SessionConfig, identity_factory
from stages.webrtc.server import ServerConfig, WebRTCServer
from tests.webrtc.peers import ReturnedFrames, api_client, wait_for
from tests.webrtc.turn import FakeTurn, fake_turn
from tests.webrtc.turn import rest_password as expected_credential

SECRET = "north-wind-7"
NOW = 1_700_000_000.25
STUN = IceServer(("stun:stun.example.org:3478",))
FIXED = IceServer(("turn:turn.example.org:3478", "turns:turn.example.org"), "alice", "pw-1")


def minted(ttl_s: int = DEFAULT_TURN_TTL_S) -> TurnRestServer:
    return TurnRestServer(("turn:turn.example.org:3478?transport=udp",), SECRET, ttl_s)


# ---- the credentials ---------------------------------------------------------------------
def test_rest_credentials_are_the_expiry_and_the_hmac_sha1_of_the_secret():
    username, credential = rest_credentials(SECRET, 1_700_086_400)
    assert username == "1700086400:vicocam"
    assert credential == expected_credential(SECRET, "1700086400:vicocam")
    # a known value: base64(HMAC-SHA1("north-wind-7", "1700086400:vicocam"))
    assert credential == base64.b64encode(hmac.digest(
        b"north-wind-7", b"1700086400:vicocam", "sha1")).decode()


def test_minted_credentials_expire_ttl_after_they_were_minted():
    server = minted(ttl_s=600).resolve(NOW)
    assert server.urls == ("turn:turn.example.org:3478?transport=udp",)
    assert server.username == f"{int(NOW) + 600}:vicocam"
    assert server.credential == expected_credential(SECRET, server.username)
    later = minted(ttl_s=600).resolve(NOW + 5)
    assert later.username == f"{int(NOW) + 605}:vicocam" and later.credential != server.credential
    assert minted().resolve(NOW).username == f"{int(NOW) + 86_400}:vicocam"  # a day by default


def test_a_turn_server_takes_minted_credentials_until_they_expire():
    clock = [NOW]
    turn = FakeTurn(secret=SECRET, clock=lambda: clock[0])
    server = minted(ttl_s=600).resolve(NOW)
    assert turn.password(server.username) == server.credential
    clock[0] = int(NOW) + 600
    assert turn.password(server.username) == server.credential  # the last valid second
    clock[0] = int(NOW) + 600.5
    assert turn.password(server.username) is None
    assert FakeTurn(secret="another", clock=lambda: NOW).password(server.username) \
        != server.credential


def test_fixed_entries_resolve_to_themselves():
    assert resolve_all([STUN, FIXED], NOW) == [STUN, FIXED]
    assert resolve_all([STUN, minted()], NOW)[1] == minted().resolve(NOW)


# ---- the entries ---------------------------------------------------------------------------
@pytest.mark.parametrize("url, scheme", [
    ("stun:stun.example.org", "stun"), ("stun:192.0.2.1:3478", "stun"),
    ("turn:turn.example.org", "turn"), ("turn:turn.example.org:3478?transport=tcp", "turn"),
    ("turn:192.0.2.1:3478?transport=udp", "turn"), ("turns:turn.example.org:5349", "turns"),
    ("turns:turn.example.org?transport=tcp", "turns"),
])
def test_urls_browsers_and_aiortc_both_use_are_taken(url, scheme):
    assert url_scheme(url) == scheme
    assert is_turn(url) == (scheme != "stun")


@pytest.mark.parametrize("url, message", [
    ("stun.example.org", "not an ICE server URL"),
    ("http://turn.example.org", "not an ICE server URL"),
    ("turn://turn.example.org", "not an ICE server URL"),
    ("stuns:stun.example.org", "not an ICE server URL"),
    ("turn:[2001:db8::1]:3478", "IPv6"),
    ("turn:turn.example.org:70000", "not an ICE server URL"),
    ("turn:turn.example.org?transport=sctp", r"\?transport=udp\|tcp"),
    ("turns:turn.example.org?transport=udp", r"\?transport=tcp"),
    ("stun:stun.example.org?transport=udp", "no transport"),
])
def test_malformed_urls_say_what_to_write(url, message):
    with pytest.raises(ValueError, match=message):
        url_scheme(url)


def test_turn_urls_need_a_username_and_a_credential():
    with pytest.raises(ValueError, match="needs a username and a credential"):
        IceServer(("turn:turn.example.org",))
    with pytest.raises(ValueError, match="needs a username and a credential"):
        IceServer(("stun:stun.example.org", "turn:turn.example.org"), "alice")
    with pytest.raises(ValueError, match="tuple"):
        IceServer("stun:stun.example.org")  # type: ignore[arg-type]


def test_a_shared_secret_is_for_turn_urls_and_must_not_be_empty():
    with pytest.raises(ValueError, match="no TURN server"):
        TurnRestServer(("stun:stun.example.org",), SECRET)
    with pytest.raises(ValueError, match="empty"):
        TurnRestServer(("turn:turn.example.org",), "")
    with pytest.raises(ValueError, match=">= 1 s"):
        TurnRestServer(("turn:turn.example.org",), SECRET, ttl_s=0)


def test_the_json_is_the_rtc_ice_server_dictionary_and_reads_back():
    assert STUN.as_json() == {"urls": ["stun:stun.example.org:3478"]}
    assert FIXED.as_json() == {"urls": ["turn:turn.example.org:3478", "turns:turn.example.org"],
                               "username": "alice", "credential": "pw-1"}
    assert IceServer.from_json(FIXED.as_json()) == FIXED
    assert IceServer.from_json({"urls": "stun:stun.example.org:3478"}) == STUN
    for bad in ({"urls": 3}, {}, ["stun:x"], {"urls": ["turn:x"], "username": 1,
                                              "credential": "c"}):
        with pytest.raises(ValueError):
            IceServer.from_json(bad)


def test_no_repr_shows_a_secret_or_a_credential():
    config = SessionConfig(ice_servers=(FIXED, minted()))
    text = repr(config) + repr(minted().resolve(NOW)) + FIXED.describe() + minted().describe()
    assert SECRET not in text and "pw-1" not in text
    assert expected_credential(SECRET, f"{int(NOW) + DEFAULT_TURN_TTL_S}:vicocam") not in text
    assert "alice" in FIXED.describe() and "86400 s" in minted().describe()


def test_session_configs_with_secrets_travel_pickled_to_replicas():
    config = SessionConfig(ice_servers=(STUN, FIXED, minted(ttl_s=60)))
    back = pickle.loads(pickle.dumps(config))
    assert back == config and back.ice_servers[2].secret == SECRET


def test_session_configs_take_only_ice_server_entries():
    with pytest.raises(ValueError, match="IceServer or TurnRestServer"):
        SessionConfig(ice_servers=("stun:stun.example.org",))  # type: ignore[arg-type]


# ---- where they go -------------------------------------------------------------------------
def test_aiortc_gets_the_credentials():
    stun, turn = rtc_ice_servers([STUN, FIXED])
    assert (stun.urls, stun.username, stun.credential) == (["stun:stun.example.org:3478"],
                                                           None, None)
    assert (turn.urls, turn.username, turn.credential) == (list(FIXED.urls), "alice", "pw-1")


def test_each_session_mints_its_own_credentials_for_its_peer_connection():
    config = SessionConfig(ice_servers=(STUN, minted(ttl_s=3600)))
    session = Session("s1", identity_factory, config)
    stun, turn = session.rtc_configuration(NOW).iceServers
    assert stun.urls == ["stun:stun.example.org:3478"] and stun.username is None
    assert turn.urls == ["turn:turn.example.org:3478?transport=udp"]
    assert turn.username == f"{int(NOW) + 3600}:vicocam"
    assert turn.credential == expected_credential(SECRET, turn.username)
    before = int(time.time())
    now = session.rtc_configuration().iceServers[1]  # what a new peer connection gets
    assert before + 3600 <= int(now.username.split(":")[0]) <= int(time.time()) + 3600


def test_the_config_answer_carries_fresh_credentials_and_is_not_cached():
    session = SessionConfig(ice_servers=(STUN, FIXED, minted(ttl_s=900)))
    server = WebRTCServer(ServerConfig(session=session))

    async def scenario():
        async with api_client(server.build_app()) as client:
            before = int(time.time())
            response = await client.get("/api/config")
            after = int(time.time())
            return await response.json(), response.headers.get("Cache-Control"), before, after

    config, cache, before, after = asyncio.run(scenario())
    assert cache == "no-store"
    stun, fixed, turn = config["iceServers"]
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert fixed == {"urls": list(FIXED.urls), "username": "alice", "credential": "pw-1"}
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    assert before + 900 <= int(turn["username"].split(":")[0]) <= after + 900
    assert turn["username"].endswith(":vicocam")
    assert turn["credential"] == expected_credential(SECRET, turn["username"])
    assert SECRET not in str(config)


def test_the_client_reads_the_credentials_and_skips_what_it_cannot_use(caplog):
    config = {"iceServers": [STUN.as_json(), FIXED.as_json(), {"urls": "turn:no-credentials"},
                             {"urls": "ftp://x"}]}
    with caplog.at_level(logging.WARNING, logger="stages.webrtc.client"):
        stun, turn = _ice_servers(config)
    assert (turn.urls, turn.username, turn.credential) == (list(FIXED.urls), "alice", "pw-1")
    assert stun.username is None
    assert [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()] == [
        "ignoring an ICE server of the server's config: the TURN server turn:no-credentials "
        "needs a username and a credential",
        "ignoring an ICE server of the server's config: 'ftp://x' is not an ICE server URL; "
        "write one of stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], "
        "turns:HOST[:PORT][?transport=tcp] (HOST a name or an IPv4 address: aiortc reads "
        "no IPv6 literal)",
    ]
    assert _ice_servers({}) == [] and _ice_servers({"iceServers": None}) == []


class RecordingApi:
    """The server's API as a `_Run` sees it: the config it is given, offers refused."""

    base = "http://fake/"

    def __init__(self, config: dict) -> None:
        self.config = config
        self.requests: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **kwargs) -> dict:
        self.requests.append((method, path))
        if path == "/api/offer":
            raise ServerRefusedError("the server refused (400): no", 400)
        return self.config


def test_a_later_call_of_the_client_reads_the_config_again_for_fresh_credentials():
    fresh = {"iceServers": [STUN.as_json()], "marker": "fresh"}

    async def scenario():
        api = RecordingApi(fresh)
        run = _Run(ClientConfig(server=api.base), api)  # type: ignore[arg-type]
        for _ in range(2):
            with pytest.raises(ServerRefusedError):
                await run._open_call()
        return api.requests, run._server

    requests, server = asyncio.run(scenario())
    # the first call uses the config `run` read before it; each later one reads it again
    assert requests == [("POST", "/api/offer"), ("GET", "/api/config"), ("POST", "/api/offer")]
    assert server == fresh


# ---- through a TURN server -----------------------------------------------------------------
def test_sessions_and_the_client_authenticate_at_the_turn_server_with_minted_credentials():
    """Both sides of a call allocate a relay at a TURN server with coturn's secret check."""

    async def scenario():
        async with fake_turn(secret=SECRET) as (turn, url):
            session = SessionConfig(ice_servers=(TurnRestServer((url,), SECRET, ttl_s=600),),
                                    watchdog_interval_s=0.2)
            server = WebRTCServer(ServerConfig(ice_host="127.0.0.1", session=session))
            async with api_client(server.build_app()) as http:
                config = ClientConfig(server=str(http.make_url("/")), ice_host="127.0.0.1",
                                      duration_s=1.5)
                source = PatternSource(PatternConfig(width=160, height=120, fps=30))
                started = int(time.time())
                report = await run_client(config, source, ReturnedFrames())
                await wait_for(lambda: not server.sessions)
            return turn, report, started

    turn, report, started = asyncio.run(scenario())
    assert report.frames_received > 0  # over the host candidates: the fake relays nothing
    assert turn.refused == []
    # The session's side allocates one relay (its bundled transport); the others are the
    # client's, made with the credentials of the config answer.
    assert len({addr for _, addr in turn.allocations}) >= 2
    for username, _ in turn.allocations:
        assert started + 600 <= int(username.split(":")[0]) <= started + 602
