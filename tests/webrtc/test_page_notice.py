"""The page of `vicocam serve` shows the server's notice (e.g. its model does not fit
real faces) in a visible element, and nothing when there is none."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from tests.webrtc.peers import browser_marks

pytestmark = browser_marks()

NOTICE = "this model knows only vicocam's synthetic world, so real faces come out distorted"


def _open(url: str, check) -> None:
    from tests.webrtc.peers import chromium_page

    with chromium_page() as page:
        page.goto(url)
        # The output choices come from the same config request as the notice.
        page.wait_for_function("document.querySelectorAll('#output-select option').length")
        check(page)


def test_the_page_shows_the_servers_notice():
    def check(page) -> None:
        assert page.locator("#notice").is_visible()
        assert page.locator("#notice").text_content() == NOTICE

    with ServerThread(WebRTCServer(ServerConfig(port=0, notice=NOTICE))) as url:
        _open(url, check)


def test_without_a_notice_the_page_shows_none():
    def check(page) -> None:
        assert page.locator("#notice").is_hidden()

    with ServerThread(WebRTCServer(ServerConfig(port=0))) as url:
        _open(url, check)
