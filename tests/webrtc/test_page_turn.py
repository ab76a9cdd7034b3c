"""The page hands the TURN servers of the server's config, credentials included, to its peer
connection, and Chromium authenticates with them at a TURN server checking them as coturn's
use-auth-secret does."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from stages.webrtc.ice_servers import TurnRestServer
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.peers import browser_marks
from tests.webrtc.turn import fake_turn_thread, rest_password

SECRET = "north-wind-7"

pytestmark = browser_marks()

RECORD_CONFIGURATIONS = """
(() => {
  const Real = window.RTCPeerConnection;
  window.rtcConfigurations = [];
  window.RTCPeerConnection = function (configuration, ...rest) {
    window.rtcConfigurations.push(JSON.parse(JSON.stringify(configuration || {})));
    return new Real(configuration, ...rest);
  };
  window.RTCPeerConnection.prototype = Real.prototype;
})();
"""
CONNECTED = ("window.vicocam && (window.vicocam.error || "
             "(window.vicocam.control && window.vicocam.control.open))")


def test_the_page_connects_with_the_minted_turn_credentials():
    from tests.webrtc.peers import chromium_page

    with fake_turn_thread(secret=SECRET) as (turn, url):
        session = SessionConfig(ice_servers=(TurnRestServer((url,), SECRET, ttl_s=600),))
        server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", session=session))
        with ServerThread(server) as page_url, chromium_page() as page:
            page.add_init_script(RECORD_CONFIGURATIONS)
            page.goto(page_url + "?autostart=1")
            page.wait_for_function(CONNECTED, timeout=60_000)
            assert page.evaluate("window.vicocam.error") is None
            configurations = page.evaluate("window.rtcConfigurations")
    (ice,) = configurations[0]["iceServers"]
    assert ice["urls"] == [url] and ice["username"].endswith(":vicocam")
    assert ice["credential"] == rest_password(SECRET, ice["username"])
    assert turn.refused == []
    # Chromium allocated relays with the page's credentials: the session's side makes one
    # allocation (its bundled transport), possibly with the same username if minted in the
    # same second, so more than one means the browser's went through.
    assert sum(username == ice["username"] for username, _ in turn.allocations) >= 2
