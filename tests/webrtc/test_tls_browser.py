"""Off localhost a browser gives the page its camera only over HTTPS.

Headless Chromium maps the non-loopback names ``vicocam.test`` and
``attacker.test`` to 127.0.0.1 (``--host-resolver-rules``), so the page is
not a loopback origin while every packet stays on this machine; the
self-signed certificate is trusted by its public-key hash only
(``--ignore-certificate-errors-spki-list``), as a user trusts it once.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest

pytest.importorskip("aiortc")

from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from stages.webrtc.tls import certificate_names, self_signed
from tests.webrtc.peers import browser_marks

pytestmark = browser_marks()

NAME = "vicocam.test"
TOKEN = "browser-" + "k3" * 16
RESOLVE = f"--host-resolver-rules=MAP {NAME} 127.0.0.1,MAP attacker.test 127.0.0.1"

CAMERA_PROBE = """async () => {
  const found = {secure: isSecureContext, mediaDevices: typeof navigator.mediaDevices};
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: true});
    found.videoTracks = stream.getVideoTracks().length;
    stream.getTracks().forEach((t) => t.stop());
  } catch (e) {
    found.error = String(e);
  }
  return found;
}"""

CONNECTED = ("window.vicocam && (window.vicocam.error || (window.vicocam.connected "
             "&& (window.vicocam.inbound.framesDecoded || 0) > 0))")


def launch(playwright, *extra: str):
    from benchmarks.browser import CHROMIUM_ARGS, find_chromium

    return playwright.chromium.launch(executable_path=find_chromium(), headless=True,
                                      args=[*CHROMIUM_ARGS, RESOLVE, *extra])


def named(url: str, name: str = NAME) -> str:
    """``url`` with its host replaced by ``name`` (same scheme, port, path and query)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{name}:{parts.port}").geturl()


def test_plain_http_under_a_lan_name_gets_no_camera_and_rebound_names_get_403():
    from playwright.sync_api import sync_playwright

    server = WebRTCServer(ServerConfig(port=0, allowed_hosts=(NAME,)))
    with ServerThread(server) as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            assert page.goto(named(url)).status == 200
            probe = page.evaluate(CAMERA_PROBE)
            rebound = page.goto(named(url, "attacker.test")).status
        finally:
            browser.close()
    assert probe["secure"] is False and probe["mediaDevices"] == "undefined"
    assert "videoTracks" not in probe and "getUserMedia" in probe["error"]
    assert rebound == 403


def test_https_with_the_trusted_self_signed_certificate_gets_the_camera_and_video_back(
        tmp_path, caplog):
    from playwright.sync_api import sync_playwright

    cert = self_signed(tmp_path, certificate_names("127.0.0.1", [NAME]))
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", token=TOKEN,
                                       allowed_hosts=(NAME,), tls=cert.files))
    caplog.set_level(logging.DEBUG)
    with ServerThread(server) as url, sync_playwright() as p:
        assert url.startswith("https://") and f"token={TOKEN}" in url
        browser = launch(p, f"--ignore-certificate-errors-spki-list={cert.spki_sha256}")
        try:
            page = browser.new_page()
            page.goto(named(url) + "&autostart=1")
            landed = page.url
            page.wait_for_function(CONNECTED, timeout=60_000, polling=200)
            error = page.evaluate("window.vicocam.error")
            probe = page.evaluate(CAMERA_PROBE)
        finally:
            browser.close()
    assert landed == f"https://{NAME}:{urlsplit(url).port}/?autostart=1"  # token gone
    assert error is None  # connected with the cookie: every API call was accepted
    assert probe == {"secure": True, "mediaDevices": "object", "videoTracks": 1}
    access = [r.getMessage() for r in caplog.records if r.name.endswith(".access")]
    assert any("/?token=REDACTED" in line for line in access), access
    assert TOKEN not in caplog.text


def test_without_trusting_it_the_browser_refuses_the_certificate(tmp_path):
    from playwright.sync_api import Error, sync_playwright

    cert = self_signed(tmp_path, certificate_names("127.0.0.1", [NAME]))
    server = WebRTCServer(ServerConfig(port=0, allowed_hosts=(NAME,), tls=cert.files))
    with ServerThread(server) as url, sync_playwright() as p:
        browser = launch(p)
        try:
            with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
                browser.new_page().goto(named(url))
        finally:
            browser.close()
