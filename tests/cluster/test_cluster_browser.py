"""One real-browser session through the Ray Serve cluster.

The gateway's page in headless Chromium (a fake camera) starts a session as a
user does: the gateway places it on an identity replica, the replica's video
comes back to the page; the page hangs up and the gateway forgets the session.
A page that vanishes without hanging up is forgotten too: its replica ends the
session's stream when the connection closes.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiortc")

from pipeline.app.cluster.config import ClusterConfig
from tests.cluster.ray_peers import wait_until
from tests.webrtc.peers import browser_marks

pytestmark = [pytest.mark.slow, *browser_marks()]

CLUSTER = ClusterConfig(sessions_per_replica=2, min_replicas=1, max_replicas=1,
                        replica_cpus=0.5, drain_timeout_s=5.0,
                        app_name="vicocam-test-browser")

CONNECTED = ("() => { const v = window.vicocam; return v.error || "
             "(v.session && v.control && v.control.open); }")
SHOWN = ("n => { const v = window.vicocam, r = document.getElementById('remote'); "
         "return (v.inbound.framesDecoded || 0) > n && v.stalls.frames > n && "
         "r.videoWidth > 0 && !r.paused && [v.inbound.framesDecoded, v.stalls.frames]; }")
"""More than ``n`` returned frames decoded (the page's ``getStats``, read once a second) and
shown by the remote ``<video>`` (``requestVideoFrameCallback``); ``[decoded, shown]``."""


@pytest.fixture(scope="module")
def hosts(ray_cluster):
    """One identity replica, deleted when the module ends (other modules deploy their own)."""
    from tests.cluster.ray_peers import deployed_replicas

    with deployed_replicas(CLUSTER) as deployed:
        yield deployed


@pytest.fixture
def gateway(hosts) -> Iterator:
    from tests.cluster.ray_peers import running_gateway

    with running_gateway(hosts, replicas=1) as served:
        yield served


@contextlib.contextmanager
def gateway_page(base: str) -> Iterator[Any]:
    """The gateway's page, loaded (not started) in headless Chromium with a fake camera."""
    from tests.webrtc.peers import chromium_page

    with chromium_page() as page:
        page.goto(base + "/")
        page.wait_for_function("window.vicocam !== undefined", timeout=30_000)
        yield page


def started(page) -> tuple[str, list[int]]:
    """Start as a user does; the page's session and ``[decoded, shown]`` once video came."""
    page.click("#start")
    page.wait_for_function(CONNECTED, timeout=45_000)
    assert page.evaluate("window.vicocam.error") is None
    session = page.evaluate("window.vicocam.session")
    page.wait_for_function(SHOWN, arg=30, timeout=30_000)
    return session, page.evaluate(f"({SHOWN})(0)")


def why_forgotten(caplog: pytest.LogCaptureFixture, session: str) -> list[str]:
    """Why the gateway forgot ``session``, as its log says (one line per time it did)."""
    ended = re.compile(rf"session {re.escape(session)} on \S+: (.*) \(\d+ in use\)")
    lines = (r.getMessage() for r in caplog.records if r.name == "stages.webrtc.gateway")
    return [m.group(1) for m in map(ended.fullmatch, lines) if m]


def test_a_page_gets_video_from_a_replica_and_hanging_up_frees_its_slot(hosts, gateway, caplog):
    caplog.set_level(logging.INFO, logger="stages.webrtc.gateway")
    hang_ups: list[str] = []
    with gateway_page(gateway.base) as page:
        page.on("request", lambda r: hang_ups.append(r.url)
                if r.method == "DELETE" and "/api/sessions/" in r.url else None)
        session, shown = started(page)
        placed = gateway.sessions()
        page.click("#stop")
        wait_until(lambda: not gateway.sessions(), limit_s=15)
        ended = page.evaluate("[window.vicocam.session, window.vicocam.sessions.length, "
                              "window.vicocam.reconnecting, "
                              "document.getElementById('status').textContent]")
    assert list(placed) == [session] and placed[session] in hosts.replica_names()
    assert min(shown) > 30  # the replica's frames, decoded and shown by the returned <video>
    assert ended == [None, 1, False, "idle"]  # hung up: no reconnect, no second session
    assert hang_ups == [f"{gateway.base}/api/sessions/{session}"]
    # The page closes its connection before it sends the hang-up: the replica may end the
    # session first ("ended: connection closed"), and the hang-up then finds none. Either way
    # the session ended, it was not lost.
    reasons = why_forgotten(caplog, session)
    assert reasons in (["ended: the peer hung up"], ["ended: connection closed"]), reasons


def test_a_page_that_vanishes_without_hanging_up_is_forgotten(gateway, caplog):
    """Its replica sees the peer go and ends the stream: the gateway hears it from there."""
    caplog.set_level(logging.INFO, logger="stages.webrtc.gateway")
    with gateway_page(gateway.base) as page:
        session, _ = started(page)
        placed = gateway.sessions()
        # The page hangs up as it closes: block that in the browser's network stack (a
        # Playwright route does not hold while the page closes), so only the replica can tell.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setBlockedURLs", {"urls": ["*/api/sessions/*"]})
        page.close()
    wait_until(lambda: not gateway.sessions(), limit_s=30)
    assert list(placed) == [session]
    reasons = why_forgotten(caplog, session)
    # Ended by its replica ("ended: connection closed"), not lost, and not by a hang-up.
    assert len(reasons) == 1 and reasons[0].startswith("ended: ") \
        and "hung up" not in reasons[0], reasons
