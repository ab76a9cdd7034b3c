"""A session's control channel: the page's controls and live stats on a WebRTC data channel.

The page (and ``vicocam client``, for the heartbeat) opens one data channel
labelled ``control`` before its offer, and the `Session` answers it with a
`ControlChannel`. Control then travels in
the session's own connection, so it never depends on which HTTP worker
answers a request. Every message is one JSON object in a text message.

The page sends (``id``, optional, a number or a short string, comes back in
the reply)::

    {"type": "settings", "id": 1, "settings": {...}}   the body of POST .../settings
    {"type": "avatar", "id": 2, "name": "mona.png"}    a preset; "name": null = the
                                                       server's avatar (as POST .../avatar)
    {"type": "stats", "id": 3}                         the stats now
    {"type": "avatar-upload", "id": 4, "name": "me.jpg", "bytes": 52311}
        then binary messages of at most 16 KiB adding up to "bytes": a PNG or JPEG
        picture, refused, decoded and prepared as by POST .../avatar (the reply is
        the settings naming "me.jpg", or an error; `stages.webrtc.channel_upload`)

The server sends::

    {"type": "settings", "id": 1, "settings": {...}}   the reply to a change; without an
                                                       id when the settings changed by
                                                       another path (an uploaded avatar)
    {"type": "error", "id": 1, "error": "..."}         a refused message (id when known);
                                                       the session goes on
    {"type": "stats", "stats": {...}}                  every ``stats_interval_s``, as
                                                       GET .../stats
    {"type": "timing", "frames": [[sent, source], ...]}   every ``timing_interval_s``

``timing`` pairs each frame the session sent since the last one with the
camera frame it was made from, both by the RTP timestamp on the wire (aiortc
adds a random origin to what it sends and rebases what it receives;
`stages.webrtc.aiortc_patches.timestamps` learns both origins): with them
the page maps a returned frame back to the moment it captured the camera
frame, and shows its own capture -> display latency whatever the camera (see
``static/rtp_latency.js``). Settings follow the rules of the HTTP routes
(`stages.webrtc.settings_messages`). Pushes are dropped, not queued, while
the page reads slower than they come.

Uploads: a channel takes one avatar change at a time (an upload, from its
header to its reply, or a pick): another is refused with an error. The size
is checked against the server's avatar byte limit before any chunk is taken;
a chunk over 16 KiB or past the announced size drops the upload with an
error carrying its id; binary messages while no upload is open get one error
(without an id) per run of them; an upload whose chunks stop for
``upload_idle_s`` is dropped with an error. Chunks do not count against the
message rate (the header does). Through a cluster's gateway this channel is
the only way to the session, so the page sends everything here; the server
also pushes ``stats`` every ``stats_interval_s`` whatever happens, which
peers use as a heartbeat (a dead server sends nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel

from stages.reenact.live_settings import AvatarKey, LiveSettings, LiveSettingsBox
from stages.webrtc.aiortc_patches import wire_timestamp
from stages.webrtc.channel_upload import ChunkedUpload, read_header
from stages.webrtc.security import RateLimiter
from stages.webrtc.settings_messages import (
    AvatarNames,
    settings_changes,
    settings_reply,
    use_avatar,
)
from stages.webrtc.tracks import OutgoingVideoTrack
from stages.webrtc.uploads import AvatarLimits

log = logging.getLogger(__name__)

CONTROL_LABEL = "control"
"""The label of the page's control channel; a session answers no other channel."""

MAX_MESSAGE_CHARS = 4096
MAX_BUFFERED_BYTES = 256 * 1024
PICK_FAILED = "the avatar could not be changed (a server error; its log has the details)"
MESSAGE_FAILED = "the message could not be handled (a server error; its log has the details)"
STRAY_CHUNK = ("send JSON text, not binary messages, except the bytes of an avatar upload "
               '(send {"type": "avatar-upload", "name": ..., "bytes": ...} first)')

AvatarPicker = Callable[[Any], Awaitable[tuple[str | None, AvatarKey | None]]]
"""Takes a pick's body (``{"name": ...}``) and returns ``(name, avatar)``, prepared.

Raises `ValueError` (an ``AvatarError`` included) with a reason for the page.
"""

AvatarUploader = Callable[[str, bytes], Awaitable[tuple[str | None, AvatarKey | None]]]
"""Takes an upload's name and bytes and returns ``(name, avatar)``, decoded and prepared.

Raises `ValueError` (an ``AvatarError`` included) with a reason for the page.
"""


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """Settings of a `ControlChannel`.

    Attributes:
        stats_interval_s: how often the session's stats are pushed.
        timing_interval_s: how often the pairs of frames sent since the last
            push are pushed (the page waits for them to measure latency).
        rate_per_s, burst: the page's messages allowed per second and at
            once; more get an error reply.
        upload_idle_s: an avatar upload whose chunks stopped this long ago
            is dropped (with an error), freeing the channel's one upload.
    """

    stats_interval_s: float = 1.0
    timing_interval_s: float = 0.2
    rate_per_s: float = 20.0
    burst: int = 40
    upload_idle_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ControlTarget:
    """What a control channel drives and reports: parts of one session.

    ``video_out`` is the track whose ``timestamps`` are pushed (``None``:
    no timing); ``source_origin`` and ``sent_origin`` return the RTP
    timestamps received and sent pts count from (``None``: not known yet,
    no timing is pushed); ``pick_avatar`` ``None`` refuses avatar picks,
    ``upload_avatar`` ``None`` refuses uploads; ``max_upload_bytes`` is the
    largest upload taken (the server's avatar byte limit).
    """

    settings: LiveSettingsBox
    names: AvatarNames
    stats: Callable[[], dict[str, Any]]
    video_out: OutgoingVideoTrack | None = None
    source_origin: Callable[[], int | None] = lambda: None
    sent_origin: Callable[[], int | None] = lambda: None
    pick_avatar: AvatarPicker | None = None
    upload_avatar: AvatarUploader | None = None
    max_upload_bytes: int = AvatarLimits().max_bytes


class ControlChannel:
    """Answers one page's control channel (see the module docstring).

    Create it on the event loop; `close` stops its pushes and closes the
    channel. A message it cannot use gets an error reply and changes nothing.
    """

    def __init__(self, channel: RTCDataChannel, target: ControlTarget,
                 config: ControlConfig | None = None) -> None:
        self.channel = channel
        self.target = target
        self.config = config or ControlConfig()
        self.refused = 0  # messages answered with an error
        self.dropped = 0  # pushes left out while the page read slowly
        self._loop = asyncio.get_running_loop()
        self._limit = RateLimiter(self.config.rate_per_s, self.config.burst)
        self._reported: LiveSettings | None = None
        self._timed = target.video_out.frames_timed if target.video_out else 0
        self._picking: asyncio.Task[None] | None = None  # an avatar being prepared
        self._upload: ChunkedUpload | None = None  # an upload whose chunks are coming
        self._stray_told = False  # a run of stray binary messages got its one error
        self._handlers: dict[str, Callable[[dict[str, Any], Any], None]] = {
            "settings": self._change_settings, "avatar": self._pick, "stats": self._send_stats,
            "avatar-upload": self._start_upload}
        self._unsubscribe = target.settings.subscribe(self._on_settings)
        channel.on("message", self._on_message)
        self._pushing = asyncio.create_task(self._push_loop(), name="control:push")

    async def close(self) -> None:
        """Stop pushing, forget the settings box, close the channel; idempotent."""
        self._unsubscribe()
        self._upload = None
        tasks = [t for t in (self._pushing, self._picking) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.channel.close()

    # ---- the page's messages ------------------------------------------------------
    def _on_message(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self._on_chunk(data)
            return
        self._stray_told = False
        request_id = None
        try:
            message = self._parse(data)
            request_id = message.get("id")
            self._handle(message, request_id)
        except ValueError as exc:
            self.refused += 1
            self._send(_with_id({"type": "error", "error": str(exc)}, request_id))
        except Exception:
            log.exception("a control message could not be handled")
            self._send(_with_id({"type": "error", "error": MESSAGE_FAILED}, request_id))

    def _parse(self, data: str | bytes) -> dict[str, Any]:
        """The message as a JSON object with a usable ``id``; `ValueError` saying what is wrong."""
        if not isinstance(data, str):
            raise ValueError("send JSON text, not binary messages")
        if len(data) > MAX_MESSAGE_CHARS:
            raise ValueError(f"the message is too long (the limit is {MAX_MESSAGE_CHARS} "
                             "characters)")
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError('send a JSON object such as {"type": "stats"}') from None
        if not isinstance(message, dict):
            raise ValueError('send a JSON object such as {"type": "stats"}')
        if not _usable_id(message.get("id")):
            raise ValueError("a message id must be a number or a string of at most 64 "
                             "characters")
        return message

    def _handle(self, message: dict[str, Any], request_id: Any) -> None:
        if self._limit.check(CONTROL_LABEL) > 0:
            raise ValueError("too many control messages; slow down")
        kind = message.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise ValueError(f"unknown message type; send one of {sorted(self._handlers)}")
        handler(message, request_id)

    def _change_settings(self, message: dict[str, Any], request_id: Any) -> None:
        box = self.target.settings
        try:
            current = box.update(**settings_changes(message.get("settings"), box.get()))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad settings: {exc}") from None
        self._reply_settings(current, request_id)

    def _pick(self, message: dict[str, Any], request_id: Any) -> None:
        if self.target.pick_avatar is None:
            raise ValueError("this server offers no avatars to pick")
        self._check_avatar_free()
        if "name" not in message:
            raise ValueError('send {"type": "avatar", "name": "<preset>"} or "name": null')
        self._change_avatar(self.target.pick_avatar({"name": message["name"]}), request_id)

    def _check_avatar_free(self) -> None:
        """`ValueError` while an upload is coming in or an avatar is being prepared."""
        if self._upload is not None:
            raise ValueError("an avatar upload is still coming in; wait for its reply")
        if self._picking is not None and not self._picking.done():
            raise ValueError("an avatar is still being prepared; wait for its reply")

    def _change_avatar(self, choice: Awaitable[tuple[str | None, AvatarKey | None]],
                       request_id: Any) -> None:
        """Make the avatar ``choice`` prepares the session's, then reply (off the handler)."""
        self._picking = asyncio.create_task(self._use_avatar(choice, request_id),
                                            name="control:avatar")

    async def _use_avatar(self, choice: Awaitable[tuple[str | None, AvatarKey | None]],
                          request_id: Any) -> None:
        try:
            name, avatar = await choice
        except ValueError as exc:
            self._refuse(str(exc), request_id)
            return
        except Exception:
            log.exception("an avatar change failed")
            self._send(_with_id({"type": "error", "error": PICK_FAILED}, request_id))
            return
        current = use_avatar(self.target.settings, self.target.names, name, avatar)
        self._reply_settings(current, request_id)

    def _send_stats(self, message: dict[str, Any], request_id: Any) -> None:
        self._send(_with_id({"type": "stats", "stats": self.target.stats()}, request_id))

    # ---- avatar uploads (`stages.webrtc.channel_upload`) -------------------------------
    def _start_upload(self, message: dict[str, Any], request_id: Any) -> None:
        if self.target.upload_avatar is None:
            raise ValueError("this server takes no avatar uploads")
        self._check_avatar_free()
        name, size = read_header(message, self.target.max_upload_bytes)
        self._upload = ChunkedUpload(request_id, name, size)

    def _on_chunk(self, chunk: bytes) -> None:
        upload = self._upload
        if upload is None:
            self._stray_chunk()
            return
        try:
            complete = upload.add(chunk)
        except ValueError as exc:
            self._upload = None
            self._refuse(str(exc), upload.request_id)
            return
        if complete and self.target.upload_avatar is not None:
            self._upload = None
            self._change_avatar(self.target.upload_avatar(upload.name, upload.data),
                                upload.request_id)

    def _stray_chunk(self) -> None:
        """A binary message outside an upload: one error per run of them (a dropped
        upload's chunks still on the way would otherwise get one each)."""
        if not self._stray_told:
            self._stray_told = True
            self._refuse(STRAY_CHUNK, None)

    def _expire_upload(self) -> None:
        upload = self._upload
        if upload is not None and upload.idle_s() > self.config.upload_idle_s:
            self._upload = None
            self._refuse(f"the avatar upload stopped after {upload.received} of {upload.size} "
                         f"bytes (nothing for {self.config.upload_idle_s:g} s); it was dropped",
                         upload.request_id)

    def _refuse(self, reason: str, request_id: Any) -> None:
        self.refused += 1
        self._send(_with_id({"type": "error", "error": reason}, request_id))

    # ---- what the server sends ---------------------------------------------------------
    def _reply_settings(self, current: LiveSettings, request_id: Any) -> None:
        self._reported = current  # the push this change triggered is this reply
        reply = {"type": "settings", "settings": settings_reply(current, self.target.names)}
        self._send(_with_id(reply, request_id))

    def _on_settings(self, new: LiveSettings) -> None:
        # Any thread may change the settings; the channel is the loop's.
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._push_settings, new)

    def _push_settings(self, new: LiveSettings) -> None:
        if new is self._reported or new is not self.target.settings.get():
            return  # already replied, or a newer change follows
        self._reported = new
        self._push({"type": "settings", "settings": settings_reply(new, self.target.names)})

    async def _push_loop(self) -> None:
        last_stats = -math.inf
        while True:
            self._push_timing()
            self._expire_upload()
            now = time.monotonic()
            if now - last_stats >= self.config.stats_interval_s:
                last_stats = now
                self._push({"type": "stats", "stats": self.target.stats()})
            await asyncio.sleep(self.config.timing_interval_s)

    def _push_timing(self) -> None:
        track = self.target.video_out
        source, sent = self.target.source_origin(), self.target.sent_origin()
        if track is None or source is None or sent is None or track.frames_timed == self._timed:
            return
        new = min(track.frames_timed - self._timed, len(track.timestamps))
        self._timed = track.frames_timed
        frames = [[wire_timestamp(sent, out), wire_timestamp(source, made_from)]
                  for out, made_from in list(track.timestamps)[-new:]]
        self._push({"type": "timing", "frames": frames})

    def _push(self, message: dict[str, Any]) -> None:
        """Send unprompted news, or drop it while the page has not read what was sent."""
        if self.channel.bufferedAmount > MAX_BUFFERED_BYTES:
            self.dropped += 1
            return
        self._send(message)

    def _send(self, message: dict[str, Any]) -> None:
        if self.channel.readyState == "open":
            self.channel.send(json.dumps(message))


def _usable_id(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return value is None or len(value) <= 64
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _with_id(message: dict[str, Any], request_id: Any) -> dict[str, Any]:
    return message if request_id is None else {**message, "id": request_id}
