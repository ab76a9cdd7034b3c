"""One WebRTC peer = one `Session`: its peer connection, its pipeline, its settings.

A session answers the peer's offer, turns the received video track into a
`TrackSource`, runs its own `Pipeline` (the stages the shared factory builds
for it, then a `TrackSink`) and sends the result back on an
`OutgoingVideoTrack`; the peer's audio goes back through a
`DelayedAudioTrack` delayed by the video path's latency.

Everything a session holds is freed in `Session.close`, which runs once,
whatever ends it: the peer hanging up (DELETE, connection closed or failed,
its track ending), a stall (no video for ``stall_timeout_s``, or none within
``connect_timeout_s`` of the answer: a peer that vanished without a word),
the pipeline ending or failing, or the server shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from pipeline.control import SettingsBox
from pipeline.frame import Frame
from pipeline.metrics import percentile
from pipeline.runtime import Pipeline, RunMode, RuntimeConfig
from pipeline.stage import Stage, StageBase
from stages.reenact.live_settings import LiveSettings, LiveSettingsBox
from stages.webrtc.aiortc_patches import (
    DEFAULT_FLOOR_BPS,
    PatchConfig,
    PlayoutDelay,
    SentRtpOrigin,
    SinkVp8Encoder,
    install_patches,
    receive_delays_ms,
    received_rtp_origin,
    release_times,
)
from stages.webrtc.control_channel import (
    CONTROL_LABEL,
    AvatarPicker,
    AvatarUploader,
    ControlChannel,
    ControlTarget,
)
from stages.webrtc.ice import filter_candidates
from stages.webrtc.ice_servers import IceServerEntry, resolve_all, rtc_ice_servers
from stages.webrtc.offers import OfferError
from stages.webrtc.settings_messages import AvatarNames
from stages.webrtc.tracks import (
    DelayedAudioTrack,
    OutgoingVideoTrack,
    TrackSink,
    TrackSource,
    pump_track,
)
from stages.webrtc.uploads import AvatarLimits

log = logging.getLogger(__name__)

StageFactory = Callable[[LiveSettingsBox], list[Stage]]
"""Builds one session's processing stages (without the sink) around its settings box.

Called once per session, in a worker thread (building may open engines);
stages may share heavy state (a loaded model) that the factory closes over,
but each session gets its own stage objects (`stages.reenact.shared_sessions`).
"""


class IdentityStage(StageBase):
    """Returns every frame unchanged: the default transform, before a model exists."""

    name = "identity"
    blocking = False  # nothing to compute

    def process(self, frame: Frame) -> Frame:
        return frame


def identity_factory(settings: LiveSettingsBox) -> list[Stage]:
    """The `StageFactory` of ``vicocam serve --identity``: one `IdentityStage`.

    It ignores the settings: the camera comes back as it was sent (for
    debugging the transport and measuring it without a model).
    """
    return [IdentityStage()]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Settings of every `Session`.

    Attributes:
        stall_timeout_s: close a session whose video stopped this long ago.
        connect_timeout_s: close a session whose first video frame has not
            come this long after the answer: a peer that never connects
            (a dead address, a flood of copied offers) gives its slot back
            this soon. A browser on loopback or a LAN sends its first frame
            well within a second; peers through a TURN relay may need more.
        watchdog_interval_s: how often those two are checked.
        max_audio_delay_s: cap on the audio delay (a stuck graph must not
            make the audio buffer grow).
        ice_servers: the STUN/TURN servers (`stages.webrtc.ice_servers`):
            the server's side of ICE resolves them per session (minting
            fresh TURN credentials from a shared secret), and ``/api/config``
            hands them to the page and clients, credentials included.
        ice_allowed: when set, only the peer's candidates on these addresses
            are used (loopback tests; see `stages.webrtc.ice`).
        max_in_flight: the runtime's in-flight limit (``None`` = its default);
            with ``adaptive_in_flight`` the cap of the adaptive limiter.
        adaptive_in_flight: the head limiter follows what pays
            (`pipeline.in_flight`); ``False`` keeps ``max_in_flight`` fixed.
        stage_threads: worker threads the session's stages are dealt into
            (`pipeline.segments`); ``None`` = one per core.
        playout_delay: the playout delay the peer is asked to keep for the
            returned video (`stages.webrtc.aiortc_patches.playout`; default
            none: show each frame when decoded); ``None`` leaves the peer's
            jitter buffer to itself.
        min_remb_bps: the least upload bandwidth the server reports to the
            peer (`stages.webrtc.aiortc_patches.bandwidth`); ``None`` reports
            aiortc's own estimate, which can lock a browser at a few frames
            per second.
        start_bitrate_kbps: the bitrate the peer is asked to start its
            upload at (`stages.webrtc.aiortc_patches.bandwidth.suggest_start_bitrate`);
            ``None`` leaves the browser's own (300 kbps).
        steady_bitrate: raise the returned video's VP8 bitrate in large
            steps (`stages.webrtc.aiortc_patches.encoder`), not a fresh
            keyframe at every 10% of the peer's bandwidth ramp.
        encode_in_sink: encode the returned video (when VP8) in the
            session's sink stage, counted and limited with the other stages,
            not in aiortc's executor shared by every session
            (`stages.webrtc.aiortc_patches.encoder.SinkVp8Encoder`).
    """

    stall_timeout_s: float = 10.0
    connect_timeout_s: float = 4.0
    watchdog_interval_s: float = 1.0
    max_audio_delay_s: float = 1.0
    ice_servers: tuple[IceServerEntry, ...] = ()
    ice_allowed: tuple[str, ...] | None = None
    max_in_flight: int | None = None
    adaptive_in_flight: bool = True
    stage_threads: int | None = None
    playout_delay: PlayoutDelay | None = field(default_factory=PlayoutDelay)
    min_remb_bps: int | None = DEFAULT_FLOOR_BPS
    start_bitrate_kbps: int | None = 1000
    steady_bitrate: bool = True
    encode_in_sink: bool = True

    def __post_init__(self) -> None:
        if not self.connect_timeout_s > 0:
            raise ValueError(f"the connect timeout must be > 0 s, got {self.connect_timeout_s}")
        wrong = [e for e in self.ice_servers if not isinstance(e, IceServerEntry)]
        if wrong:
            raise ValueError("ICE servers are IceServer or TurnRestServer entries, "
                             f"got {wrong[0]!r}")

    def patches(self) -> PatchConfig:
        """The aiortc patches a session installs beyond the frame assemblers."""
        return PatchConfig(playout_delay=self.playout_delay, min_remb_bps=self.min_remb_bps,
                           start_bitrate_kbps=self.start_bitrate_kbps,
                           steady_bitrate=self.steady_bitrate,
                           encode_in_sink=self.encode_in_sink)


class Session:
    """One peer's connection, pipeline and settings; see the module docstring.

    ``settings`` starts as ``initial`` (default `LiveSettings()`); the server's
    handlers and the page's control channel (`stages.webrtc.control_channel`)
    replace it, the stages read it per frame. ``avatar_names`` names the
    avatar chosen last; ``pick_avatar`` lets the channel pick presets and
    ``upload_avatar`` take pictures uploaded on it (of at most
    ``max_upload_bytes``; `stages.webrtc.channel_upload`); ``None`` refuses them.
    """

    def __init__(self, session_id: str, factory: StageFactory, config: SessionConfig,
                 on_closed: Callable[[Session], None] | None = None,
                 initial: LiveSettings | None = None,
                 pick_avatar: AvatarPicker | None = None,
                 upload_avatar: AvatarUploader | None = None,
                 max_upload_bytes: int = AvatarLimits().max_bytes) -> None:
        self.id = session_id
        self.config = config
        self.settings: LiveSettingsBox = SettingsBox(initial or LiveSettings())
        self.avatar_names = AvatarNames()
        self.control: ControlChannel | None = None
        self._pick_avatar = pick_avatar
        self._upload_avatar = upload_avatar
        self._max_upload_bytes = max_upload_bytes
        self.close_reason: str | None = None
        self._factory = factory
        self._on_closed = on_closed
        self._created = time.monotonic()
        self._answered: float | None = None  # when the answer was made (the connect clock)
        self._pc: RTCPeerConnection | None = None
        self._video_in: TrackSource | None = None
        self._video_out: OutgoingVideoTrack | None = None
        self._sent_rtp: SentRtpOrigin | None = None  # the returned video's RTP origin
        self._sink_encoder: SinkVp8Encoder | None = None  # None: aiortc encodes
        self._audio_out: DelayedAudioTrack | None = None
        self._pipeline: Pipeline | None = None
        self._tasks: list[asyncio.Task[Any]] = []  # pumps and the watchdog
        self._pipeline_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closing = False
        self.closed = asyncio.Event()

    # ---- start ------------------------------------------------------------------
    async def answer(self, offer_sdp: str) -> str:
        """Answer the peer's offer and start processing; return the answer SDP.

        The pipeline is built only once aiortc has made the answer, so an offer
        it refuses costs no stages (the factory may open engines). Raises
        `OfferError` for an offer aiortc cannot negotiate.
        """
        answer = await self._negotiate(offer_sdp)
        source, out = self._video_pair()
        # Off the event loop: a factory may prepare engines, and other peers' media waits.
        self._pipeline = await asyncio.to_thread(self._build_pipeline, source, out)
        self._pipeline_task = asyncio.create_task(self._run_pipeline(), name=f"{self.id}:pipeline")
        self._answered = time.monotonic()
        self._tasks.append(asyncio.create_task(self._watch(), name=f"{self.id}:watchdog"))
        return answer

    async def _negotiate(self, offer_sdp: str) -> str:
        """Take the offer into a new peer connection and set its answer; the answer SDP."""
        pc = self._pc = self._peer_connection()
        if self.config.ice_allowed is not None:
            offer_sdp = filter_candidates(offer_sdp, self.config.ice_allowed)
        with _refusing("its description was refused"):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self._video_pair()
        self._sink_encoder = install_patches(pc, self.config.patches(), offer_sdp)
        with _refusing("no answer could be made to it"):
            await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def _source_origin(self) -> int | None:
        return received_rtp_origin(self._pc) if self._pc is not None else None

    def _sent_origin(self) -> int | None:
        return self._sent_rtp.origin if self._sent_rtp is not None else None

    def _video_pair(self) -> tuple[TrackSource, OutgoingVideoTrack]:
        """The received video and the track that returns it; `OfferError` if none came."""
        if self._video_in is None or self._video_out is None:
            raise OfferError("the offer has no video track; send a camera")
        return self._video_in, self._video_out

    def rtc_configuration(self, now: float | None = None) -> RTCConfiguration:
        """The peer connection's configuration: its ICE servers at ``now`` (Unix seconds;
        default the time now), TURN credentials minted then where they come from a secret."""
        servers = resolve_all(self.config.ice_servers, time.time() if now is None else now)
        return RTCConfiguration(iceServers=rtc_ice_servers(servers))

    def _peer_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(self.rtc_configuration())
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_channel)
        pc.on("connectionstatechange", self._on_connection_state)
        return pc

    def _on_channel(self, channel: Any) -> None:
        if channel.label != CONTROL_LABEL or self.control is not None or self._closing:
            log.info("session %s: closing an unexpected data channel", self.id)
            channel.close()
            return
        target = ControlTarget(self.settings, self.avatar_names, self.stats, self._video_out,
                               self._source_origin, self._sent_origin, self._pick_avatar,
                               self._upload_avatar, self._max_upload_bytes)
        self.control = ControlChannel(channel, target)

    def _build_pipeline(self, source: TrackSource, out: OutgoingVideoTrack) -> Pipeline:
        encodes = self._sink_encoder is not None
        stages = [*self._factory(self.settings), TrackSink(out, encoder=self._sink_encoder)]
        # A sink that encodes takes as long as a model stage: in its own thread it does
        # not lengthen the last segment, which then became the bottleneck.
        config = RuntimeConfig(mode=RunMode.LIVE, max_in_flight=self.config.max_in_flight,
                               adaptive_in_flight=self.config.adaptive_in_flight,
                               stage_threads=self.config.stage_threads,
                               sink_alone=True if encodes else None)
        return Pipeline(source, stages, config)

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self._pc is not None
        if track.kind == "video" and self._video_in is None:
            # The watchdog closes a peer that never sends at the connect deadline, with
            # that reason; the source's own wait is only the backstop, a second later.
            self._video_in = TrackSource(open_timeout_s=self.config.connect_timeout_s + 1.0)
            self._video_out = OutgoingVideoTrack()
            self._pump(track, self._video_in.push, self._video_in.end)
            self._sent_rtp = SentRtpOrigin(self._pc.addTrack(self._video_out))
        elif track.kind == "audio" and self._audio_out is None:
            self._audio_out = DelayedAudioTrack(self._audio_delay_s)
            self._pump(track, self._audio_out.push, self._audio_out.end)
            self._pc.addTrack(self._audio_out)
        else:
            log.info("session %s: ignoring an extra %s track", self.id, track.kind)

    def _pump(self, track: MediaStreamTrack, push: Callable[[Any], None],
              end: Callable[[], None]) -> None:
        task = asyncio.create_task(pump_track(track, push, end), name=f"{self.id}:{track.kind}")
        self._tasks.append(task)

    def _audio_delay_s(self) -> float:
        latency = self._video_out.path_latency_ms() if self._video_out else None
        return 0.0 if latency is None else min(latency / 1e3, self.config.max_audio_delay_s)

    # ---- supervision --------------------------------------------------------------
    def _on_connection_state(self) -> None:
        state = self._pc.connectionState if self._pc else "closed"
        log.info("session %s: connection %s", self.id, state)
        if state in ("failed", "closed"):
            self._spawn_close(f"connection {state}")

    def _spawn_close(self, reason: str) -> None:
        if not self._closing and self._close_task is None:
            self._close_task = asyncio.create_task(self.close(reason), name=f"{self.id}:close")

    async def _run_pipeline(self) -> None:
        assert self._pipeline is not None
        try:
            report = await self._pipeline.run()
            reason = f"the video ended ({report.reason})"
        except Exception as exc:
            reason = f"processing failed: {exc}"
            if not self._closing:  # otherwise the close itself ended it
                log.warning("session %s: %s", self.id, reason)
        self._spawn_close(reason)

    @property
    def pending(self) -> bool:
        """Whether the session holds a slot without video yet (negotiating or connecting)."""
        return self._video_in is None or self._video_in.last_arrival_ns is None

    def connect_left_s(self, now: float | None = None) -> float:
        """Seconds until a pending session is closed for not connecting (0 once due).

        Before the answer the whole timeout is left (the clock starts then).
        """
        if self._answered is None:
            return self.config.connect_timeout_s
        now = time.monotonic() if now is None else now
        return max(0.0, self._answered + self.config.connect_timeout_s - now)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._next_check_s())
            reason = self.stall_reason(time.monotonic_ns())
            if reason is not None:
                self._spawn_close(reason)
                return

    def _next_check_s(self) -> float:
        # While connecting, wake at the connect deadline rather than up to an interval late.
        interval = self.config.watchdog_interval_s
        if not self.pending:
            return interval
        return min(interval, max(0.01, self.connect_left_s()))

    def stall_reason(self, now_ns: int) -> str | None:
        """Why the session should be closed now, or ``None`` while it is healthy."""
        if self._video_in is None or self._answered is None:
            return None
        last = self._video_in.last_arrival_ns
        if last is None:
            if self.connect_left_s(now_ns / 1e9) <= 0:
                return f"no video within {self.config.connect_timeout_s:g} s"
            return None
        if (now_ns - last) / 1e9 > self.config.stall_timeout_s:
            return f"no video for {self.config.stall_timeout_s:g} s (the peer is gone)"
        return None

    # ---- control ----------------------------------------------------------------
    async def close(self, reason: str) -> None:
        """Free everything the session holds; idempotent, safe from its own tasks."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        self.close_reason = reason
        log.info("session %s: closing: %s", self.id, reason)
        try:
            await self._release()
        finally:
            self.closed.set()
            if self._on_closed is not None:
                self._on_closed(self)

    async def _release(self) -> None:
        if self._pipeline is not None:
            self._pipeline.request_stop()
        if self._video_in is not None:
            self._video_in.close()  # unblocks a source read waiting for video
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        # The pipeline is asked to stop, not cancelled: it stops its stages and joins
        # its threads itself.
        if self._pipeline_task is not None and self._pipeline_task is not current:
            others.append(self._pipeline_task)
        for task in others:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=15.0)
        for track in (self._video_out, self._audio_out):
            if track is not None:
                track.stop()
        if self.control is not None:
            await self.control.close()
        if self._pc is not None:
            await self._close_connection(self._pc)

    async def _close_connection(self, pc: RTCPeerConnection) -> None:
        """Close ``pc``; aiortc's own failure to close is logged, not raised.

        aiortc's ``close`` raises on a connection whose answer failed half-way
        (its transports were never made); the session is closing either way,
        so the peer gets the offer's 400, not a 500. What the connection
        leaves in reference cycles is collected by the server after the
        session ends (`WebRTCServer._forget`).
        """
        try:
            await pc.close()
        except Exception:  # aiortc's own bug on half-made connections; nothing left to free
            log.warning("session %s: the peer connection failed to close cleanly", self.id,
                        exc_info=True)

    # ---- stats ------------------------------------------------------------------
    def _receive_ms(self, source: TrackSource) -> dict[str, float | None]:
        """p50 and p95 of aiortc's decoding and hand-off of the last frames received
        (`stages.webrtc.aiortc_patches.timestamps.receive_delays_ms`)."""
        released = release_times(self._pc) if self._pc is not None else {}
        return _p50_p95(receive_delays_ms(list(source.arrivals)[-60:], released,
                                          self._source_origin()))

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot for the page's stats panel."""
        out: dict[str, Any] = {
            "session": self.id,
            "state": self._pc.connectionState if self._pc else "new",
            "age_s": round(time.monotonic() - self._created, 1),
        }
        if self._video_in is not None:
            out["frames_received"] = self._video_in.frames_received
            out["frames_replaced"] = self._video_in.replaced
            out["stalls_in"] = self._video_in.arrival_gaps.snapshot()
            out["receive_ms"] = self._receive_ms(self._video_in)
        if self._video_out is not None:
            recent = list(self._video_out.latencies_ms)[-60:]
            out["frames_sent"] = self._video_out.frames_sent
            out["stalls_out"] = self._video_out.send_gaps.snapshot()
            out["encoder"] = "sink" if self._sink_encoder is not None else "aiortc"
            out["encoded_dropped"] = self._video_out.encoded_dropped
            out["server_latency_ms"] = _p50_p95(recent)
        if self._sent_rtp is not None:
            out["stalls_encoded"] = self._sent_rtp.encoded_gaps.snapshot()
        if self._audio_out is not None:
            out["audio_delay_ms"] = round(self._audio_out.current_delay_ms, 1)
            out["audio_dropped"] = self._audio_out.dropped
        if self._pipeline is not None:
            out.update(_pipeline_stats(self._pipeline))
        return out


@contextlib.contextmanager
def _refusing(reason: str) -> Iterator[None]:
    """Turn whatever aiortc raises on a peer's SDP into an `OfferError` with a fixed ``reason``.

    aiortc raises ValueError, KeyError, AssertionError, InvalidStateError...
    with texts that describe its internals, not what the user should change:
    they are logged here and never sent back.
    """
    try:
        yield
    except Exception as exc:
        log.info("an offer could not be negotiated (%s): %r", reason, exc)
        raise OfferError(f"the offer could not be negotiated: {reason}") from exc


def _pipeline_stats(pipeline: Pipeline) -> dict[str, Any]:
    m = pipeline.metrics
    stages = {name: {"p50_ms": _finite(percentile(c.durations_ms[-60:], 50)),
                     "errors": c.errors} for name, c in m.stages.items()}
    legs = {leg: _finite(ms) for leg, ms in m.legs.means(last=60).items()}
    service = _finite(percentile(m.legs.services_ms(last=60), 50))
    return {"fps_in": round(m.fps_in(), 1), "fps_out": round(m.fps_out(), 1),
            "drops": dict(m.drops), "stages": stages, "legs_ms": legs,
            "service_p50_ms": service}


def _p50_p95(values: list[float]) -> dict[str, float | None]:
    return {"p50": _finite(percentile(values, 50)), "p95": _finite(percentile(values, 95))}


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None
