"""A real browser as the WebRTC peer: headless Chromium driven by playwright.

Used by the browser test and ``vicocam bench webrtc``. Chromium's fake camera
plays a ``.y4m`` clip whose frames carry the stamped frame index
(`stages.stamp`): a moving test pattern, or a held-out synthetic person
talking (a face for the avatar model to follow). The page reads the index
back from both its local preview and the returned video and records
capture-to-display latency per frame (see ``stages/webrtc/static/app.js``;
with a model, the server must relay the stamp, see
`stages.webrtc.stamp_relay.StampRelay`). Everything stays on loopback: the server
gathers ICE only on 127.0.0.1 (`ServerConfig.ice_host`), the page uses no
STUN, and Chromium is allowed loopback candidates.

It measures the product from outside, so it lives with the benchmarks, not
in `stages.webrtc`.

The browser comes from the system (Debian's ``chromium``, installed with
``scripts/install-browser.sh``), never from ``playwright install``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from pipeline.frame import Image
from stages.io import PatternConfig, PatternSource
from stages.stamp import stamp

log = logging.getLogger(__name__)

CHROMIUM_ARGS = (
    "--hide-scrollbars",
    "--mute-audio",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)
"""Flags that make headless Chromium a camera-less, loopback-only WebRTC peer."""

INSTALL_HINT = "run scripts/install-browser.sh (Debian's chromium and playwright for Python)"

CameraClip = Literal["pattern", "person"]
"""What the fake camera shows: the moving test pattern, or a synthetic person."""


class BrowserUnavailableError(RuntimeError):
    """Chromium or playwright is missing; the message says how to install them."""


def find_chromium() -> str | None:
    """``$VICOCAM_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH."""
    configured = os.environ.get("VICOCAM_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def playwright_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def write_stamped_y4m(path: Path, width: int, height: int, fps: int, frames: int,
                      camera: CameraClip = "pattern") -> Path:
    """A raw I420 ``.y4m`` of ``frames`` pictures of ``camera``, frame index stamped.

    Raw video is big (640x480: 460 kB a frame): keep ``frames`` just longer
    than the latency to measure, the fake camera loops the clip.
    """
    pictures = _person if camera == "person" else _pattern
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in pictures(width, height, fps, frames):
            out.write(b"FRAME\n")
            out.write(np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)).tobytes())
    return path


def _pattern(width: int, height: int, fps: int, frames: int) -> Iterator[Image]:
    source = PatternSource(PatternConfig(width=width, height=height, fps=fps, frames=frames))
    source.open()
    try:
        yield from (source.render(index) for index in range(frames))  # stamped by the source
    finally:
        source.close()


def _person(width: int, height: int, fps: int, frames: int) -> Iterator[Image]:
    from stages.reenact.person import PersonConfig, PersonSource

    # Half the clip rendered, played forward then back: the loop has no jump.
    clip = max(2, frames // 2 + 1)
    source = PersonSource(PersonConfig(
        clip_frames=clip, fps=fps, width=width, height=height, frames=frames))
    source.open()
    try:
        for index in range(frames):
            frame = source.read()
            if frame is None:
                return
            image = np.array(frame.image, copy=True)
            stamp(image, index)
            yield image
    finally:
        source.close()


@dataclass(frozen=True, slots=True)
class BrowserRunConfig:
    """One measured browser session.

    Attributes:
        seconds: measured time, after ``warmup_s`` of connected video.
        warmup_s: connected time ignored at the start (bandwidth ramp-up).
        width, height, fps: the fake camera.
        clip_s: length of the looping camera clip (longer than any latency).
        connect_timeout_s: how long the page may take to show the first frame.
        chromium: browser executable; ``None`` = `find_chromium`.
        camera: what the fake camera shows (`CameraClip`).
        cpus: the cores Chromium (and every process it starts) may run on;
            ``None`` = any. A benchmark pins the browser and the server to
            different cores, as they are on different machines in use.
    """

    seconds: float = 10.0
    warmup_s: float = 3.0
    width: int = 640
    height: int = 480
    fps: int = 30
    clip_s: float = 4.0
    connect_timeout_s: float = 60.0
    chromium: str | None = None
    camera: CameraClip = "pattern"
    cpus: tuple[int, ...] | None = None


@dataclass
class BrowserRunResult:
    """What the page measured over the window (see `run_browser_peer`).

    ``latencies`` are ``(display time s, capture-to-display ms)`` pairs;
    ``inbound``/``outbound`` are the page's getStats video entries and
    ``server`` the session's stats endpoint, all at the end of the window
    (``inbound_start``, ``outbound_start``, ``server_start``: the same at its start).
    Latencies end when the browser presented the returned frame for
    composition (its frame callback's ``presentationTime``); the page's
    ``static/app.js`` says why not Chromium's expected display time.
    ``receive_to_present_ms``: for each returned frame presented in the
    window, its last packet's receipt to its presentation (jitter buffer,
    decoding); ``display_estimate_ms``: Chromium's expected display time of
    each less its presentation (an estimate, kept for reference).
    ``latency_unmatched`` counts stamped returned frames whose capture could
    not be told apart from a loop older (``stages/webrtc/static/latency.js``).
    ``freezes`` is the change of getStats' ``freezeCount`` (``None`` when the
    browser does not report it); ``stalls`` and ``stall_ms`` count the gaps
    over 100 ms between displayed returned frames and their summed length
    (``static/stalls.js``, the page's own counter); ``stalls_unsure`` and
    ``stall_unsure_ms`` the gaps over 100 ms across which the video presented
    frames under 100 ms apart on average: the page's frame callback ran late,
    the video may not have stalled.
    """

    frames_decoded: int
    seconds: float
    freezes: int | None
    latencies: list[tuple[float, float]]
    inbound: dict[str, Any] = field(default_factory=dict)
    inbound_start: dict[str, Any] = field(default_factory=dict)
    outbound: dict[str, Any] = field(default_factory=dict)
    outbound_start: dict[str, Any] = field(default_factory=dict)
    receive_to_present_ms: list[float] = field(default_factory=list)
    display_estimate_ms: list[float] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    server_start: dict[str, Any] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    latency_unmatched: int = 0
    stalls: int = 0
    stall_ms: float = 0.0
    stalls_unsure: int = 0
    stall_unsure_ms: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames_decoded / self.seconds if self.seconds > 0 else 0.0


def run_browser_peer(url: str, config: BrowserRunConfig | None = None, *,
                     interact: Callable[[Any], None] | None = None) -> BrowserRunResult:
    """Open the page at ``url`` in headless Chromium, stream, measure, close.

    ``interact(page)`` (a playwright ``Page``), if given, runs once the video
    plays, before the warm-up: a test uses it to drive the page's controls.
    Raises `BrowserUnavailableError` without Chromium or playwright, and
    ``RuntimeError`` when the page does not get video back in time.
    """
    config = config or BrowserRunConfig()
    chromium = config.chromium or find_chromium()
    if chromium is None or not playwright_available():
        raise BrowserUnavailableError(f"no Chromium or playwright here; {INSTALL_HINT}")
    frames = max(2, round(config.clip_s * config.fps))
    with tempfile.TemporaryDirectory(prefix="vicocam-y4m-") as tmp:
        clip = write_stamped_y4m(Path(tmp) / "camera.y4m", config.width, config.height,
                                 config.fps, frames, config.camera)
        args = [*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={clip}"]
        if config.cpus is not None:
            chromium = pinned_executable(chromium, config.cpus, Path(tmp))
        return _drive(chromium, args, _autostart(url), config, interact)


def pinned_executable(executable: str, cpus: tuple[int, ...], folder: Path) -> str:
    """A launcher that runs ``executable`` on ``cpus`` only (its children inherit it)."""
    taskset = shutil.which("taskset")
    if taskset is None:
        raise BrowserUnavailableError("pinning the browser needs taskset (util-linux)")
    launcher = folder / "chromium-pinned"
    cores = ",".join(str(c) for c in cpus)
    launcher.write_text(f'#!/bin/sh\nexec {taskset} -c {cores} {executable} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


def _autostart(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "autostart=1"


def _drive(chromium: str, args: list[str], url: str, config: BrowserRunConfig,
           interact: Callable[[Any], None] | None) -> BrowserRunResult:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)
            _wait_for_video(page, config.connect_timeout_s)
            if interact is not None:
                interact(page)
            time.sleep(config.warmup_s)
            start = page.evaluate("window.vicocam.snapshot()")
            dropped = page.evaluate("window.vicocam.latencyDropped")
            time.sleep(config.seconds)
            end = page.evaluate("window.vicocam.snapshot()")
            samples = page.evaluate(
                "t0 => window.vicocam.latencies.filter(s => s.t >= t0).map(s => [s.t, s.ms])",
                start["now"])
            display = {key: page.evaluate(
                f"t0 => window.vicocam.{key}.filter(s => s.t >= t0).map(s => s.ms)",
                start["now"]) for key in ("receiveToPresent", "displayEstimate")}
            dropped = page.evaluate("window.vicocam.latencyDropped") - dropped
        finally:
            browser.close()
    return _result(start, end, samples, errors, dropped, display)


def _wait_for_video(page: Any, timeout_s: float) -> None:
    try:
        page.wait_for_function(
            "window.vicocam && (window.vicocam.error || "
            "(window.vicocam.connected && (window.vicocam.inbound.framesDecoded || 0) > 0))",
            timeout=timeout_s * 1000, polling=200)
    except Exception as exc:
        raise RuntimeError(f"the page got no video back within {timeout_s:g} s: {exc}") from exc
    error = page.evaluate("window.vicocam.error")
    if error:
        raise RuntimeError(f"the page failed: {error}")


def _result(start: dict[str, Any], end: dict[str, Any], samples: list[list[float]],
            errors: list[str], unmatched: int,
            display: dict[str, list[float]]) -> BrowserRunResult:
    inbound0, inbound1 = start["inbound"], end["inbound"]
    freezes = None
    if "freezeCount" in inbound1 and "freezeCount" in inbound0:
        freezes = int(inbound1["freezeCount"]) - int(inbound0["freezeCount"])
    decoded = int(inbound1.get("framesDecoded", 0)) - int(inbound0.get("framesDecoded", 0))
    return BrowserRunResult(
        frames_decoded=decoded,
        seconds=(end["now"] - start["now"]) / 1e3,
        freezes=freezes,
        latencies=[(t / 1e3, ms) for t, ms in samples],
        inbound=inbound1,
        inbound_start=inbound0,
        outbound=end["outbound"],
        outbound_start=start["outbound"],
        receive_to_present_ms=display["receiveToPresent"],
        display_estimate_ms=display["displayEstimate"],
        server=end.get("server") or {},
        server_start=start.get("server") or {},
        console_errors=errors,
        latency_unmatched=unmatched,
        stalls=int(end["stalls"]["count"]) - int(start["stalls"]["count"]),
        stall_ms=float(end["stalls"]["totalMs"]) - float(start["stalls"]["totalMs"]),
        stalls_unsure=int(end["stalls"]["unsure"]) - int(start["stalls"]["unsure"]),
        stall_unsure_ms=float(end["stalls"]["unsureMs"]) - float(start["stalls"]["unsureMs"]),
    )
