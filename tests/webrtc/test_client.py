"""`vicocam client` against an in-process `vicocam serve`: synthetic camera in, file out."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from stages.io import (
    PatternConfig,
    PatternSource,
    VideoFileSink,
    VideoFileSinkConfig,
    VideoFileSource,
    VideoFileSourceConfig,
)
from stages.stamp import read_stamp
from stages.webrtc.client import ClientConfig, ClientError, run_client, split_server_url
from stages.webrtc.peer_session import SessionConfig
from stages.webrtc.server import ServerConfig, WebRTCServer
from tests.webrtc.peers import api_client


def test_the_avatar_comes_back_into_a_file(tmp_path):
    out = tmp_path / "returned.mp4"
    server = WebRTCServer(ServerConfig(ice_host="127.0.0.1",
                                       session=SessionConfig(watchdog_interval_s=0.2)))

    async def scenario():
        async with api_client(server.build_app()) as http:
            config = ClientConfig(server=str(http.make_url("/")), duration_s=2.5,
                                  ice_host="127.0.0.1", drain_s=1.0)
            source = PatternSource(PatternConfig(width=160, height=120, fps=30))
            sink = VideoFileSink(VideoFileSinkConfig(out, fps=30))
            report = await run_client(config, source, sink)
            for _ in range(100):  # the DELETE closes the session; let it finish
                if not server.sessions:
                    break
                await asyncio.sleep(0.05)
            return report

    report = asyncio.run(scenario())
    assert report.session and report.frames_sent > 20
    assert report.frames_received > 10
    assert not server.sessions
    source = VideoFileSource(VideoFileSourceConfig(out))
    info = source.open()
    indices = []
    while (frame := source.read()) is not None:
        indices.append(read_stamp(frame.image))
    source.close()
    assert (info.width, info.height) == (160, 120)
    read = [i for i in indices if i is not None]
    assert len(read) >= 0.9 * len(indices) and read == sorted(read)
    assert len(read) == report.frames_received


def test_a_refused_connection_says_why():
    server = WebRTCServer(ServerConfig(token="right"))

    async def scenario():
        async with api_client(server.build_app()) as http:
            config = ClientConfig(server=str(http.make_url("/")), token="wrong")
            source = PatternSource(PatternConfig(width=160, height=120))
            with pytest.raises(ClientError, match="401"):
                await run_client(config, source, VideoFileSink(VideoFileSinkConfig("x.mp4")))

    asyncio.run(scenario())


def test_server_urls_may_carry_the_token():
    assert split_server_url("http://gpu:8080/?token=abc", None) == ("http://gpu:8080", "abc")
    assert split_server_url("gpu:8080", "t") == ("http://gpu:8080", "t")
    with pytest.raises(ClientError):
        split_server_url("ftp://gpu", None)
