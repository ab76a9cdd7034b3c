"""``vicocam serve``: an aiohttp server with WebRTC signalling and the browser page.

Routes (the API answers JSON; errors are ``{"error": "..."}`` with a status)::

    GET    /                              the page (static/index.html); /?token=T sets the
                                          access cookie and redirects to / without it
    GET    /static/...                    its script and style
    GET    /api/config                    ICE servers (TURN credentials included, minted
                                          per request from a shared secret; not cached),
                                          upload limits, the starting settings and the
                                          server's notice (null when none)
    POST   /api/offer                     {sdp, type: "offer"} -> {sdp, type: "answer", session}
    GET    /api/avatars                   names of the server's preset avatars
    GET    /api/avatars/{name}            one preset picture
    POST   /api/sessions/{id}/avatar      a PNG/JPEG body, {"name": preset}, or
                                          {"name": null} (back to the server's avatar)
    POST   /api/sessions/{id}/settings    any of {"strength": 0..2, "reset": true,
                                          "mode": "cross"|"relative"|"absolute"|null,
                                          "output": "paste"|"crop"|"side_by_side"}
    GET    /api/sessions/{id}/stats       live counters of the session
    DELETE /api/sessions/{id}             hang up

Before any handler runs (the page included), a request whose ``Host`` header
names neither this machine nor a name given with ``allowed_hosts``
(``--allow-host``) gets 403: on a loopback bind always, since no token guards
it there and a page of another site whose DNS name was rebound to 127.0.0.1
sends its own name, with a matching ``Origin``; on other binds only when
names were given (see `stages.webrtc.security.host_allowlist`).

Guards on every ``/api`` request, in order: a cross-site ``Origin`` is refused
(a web page the user visits must not drive a local server), the access token
(required off loopback, see `stages.webrtc.security`), then a per-client rate
limit (429 with ``Retry-After``).

The token travels in the URL only once: opening the printed ``/?token=T``
exchanges it for an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) and
redirects to the page without it, so it leaves the address bar, the history
and any referrer; the page's API calls then carry the cookie, and programs
(``vicocam client``) send ``Authorization: Bearer T``. A token in an API
URL is not accepted, and the access log (DEBUG, `AccessLogger`) writes every
``token`` query value as ``REDACTED``. With ``tls``, the server speaks HTTPS
(`stages.webrtc.tls`): browsers give the camera to a page of any other name
than a loopback one only then. Offers have their own, stricter rate, a
size limit and a session limit; a bad offer gets 400 with the reason
(`stages.webrtc.offers` checks it whole before any session work). Floods
from many addresses meet a global budget: at most ``max_pending`` sessions
may be negotiating or waiting for their first frame at once, and each gives
its slot back when no video came within the connect timeout (4 s); beyond
the budget or the session limit an offer gets 503 with ``Retry-After``.

No request gets an exception's text: bodies are read within fixed caps and
refused with fixed reasons (4xx), and what nobody foresaw is logged with
its traceback and answered with a fixed 500.

A session's settings are the avatar path's `LiveSettings` (one type for the
terminal of ``vicocam run`` and this page): every control replaces the
session's box whole, and the change applies from the next frame.
The page sends its controls and gets its live stats on the session's own
data channel (`stages.webrtc.control_channel`), whichever HTTP worker
answered the offer; the settings, avatar and stats routes stay for programs
and answer by the same rules (`stages.webrtc.settings_messages`).

Every session starts through one seam, `WebRTCServer.open_session` (the
offer checked, admission, the start; otherwise `SessionRefusedError`
carrying the HTTP status): ``/api/offer`` uses it, and so does a cluster
replica, which hosts sessions with no listener of its own
(`pipeline.app.cluster`). `stages.webrtc.gateway` is this server with its
sessions moved to such hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware
from yarl import URL

from networks.motion import MotionMode
from pipeline.memory import release_free_memory
from stages.reenact.live_settings import (
    MAX_STRENGTH,
    MIN_STRENGTH,
    AvatarKey,
    LiveSettings,
    OutputMode,
)
from stages.webrtc.ice import ice_host_addresses
from stages.webrtc.ice_servers import resolve_all
from stages.webrtc.offers import check_offer
from stages.webrtc.peer_session import (
    OfferError,
    Session,
    SessionConfig,
    StageFactory,
    identity_factory,
)
from stages.webrtc.security import (
    RateLimiter,
    bearer_token,
    host_allowlist,
    host_name,
    resolve_token,
    token_matches,
)
from stages.webrtc.settings_messages import settings_changes, settings_reply, use_avatar
from stages.webrtc.tls import TlsFiles, server_context
from stages.webrtc.uploads import AvatarError, AvatarLimits, decode_avatar

CLOSED_COLLECT_DELAY_S = 1.0
"""How long after a session ends its leftovers are collected (see `WebRTCServer._forget`)."""

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
AVATAR_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of `WebRTCServer`.

    Attributes:
        host, port: where to listen; anything but loopback requires a token.
        token: access token; ``None`` = none on loopback, a generated one
            elsewhere (printed at start).
        max_sessions: peers served at once; more get 503.
        max_pending: sessions, of all clients together, that may be negotiating
            or waiting for their first video frame at once (each waits at most
            its ``session.connect_timeout_s``); more offers get 503 with
            ``Retry-After``. The per-client rates cannot stop a flood from many
            addresses; this budget does, and keeps building pipelines for
            offers nobody completes to a few at a time.
        max_offer_bytes: largest accepted offer SDP (browsers send ~5-10 kB).
        avatar_limits: bounds on uploaded avatars.
        api_rate_per_s, api_burst: per-client rate limit of all API calls.
        offer_rate_per_s, offer_burst: per-client rate limit of offers.
        ice_host: gather ICE candidates only on this address and use only the
            peer's candidates on it (``127.0.0.1`` for loopback tests).
        avatars_dir: a folder of preset avatar pictures the page offers.
        session: settings of every session.
        settings: the live settings every session starts with (its avatar is
            the one ``{"name": null}`` returns to); a call shows the pasted
            avatar by default, not the driver beside it.
        notice: one line the page shows and ``vicocam client`` prints, e.g. that
            the model does not fit real faces and what to use instead (the
            application layer words it); ``None`` = nothing to say.
        allowed_hosts: ``Host`` names accepted besides loopback ones
            (``localhost``, ``127.x.x.x``, ``[::1]``), without ports, e.g. a
            LAN name a browser uses. ``()`` = loopback names only on a loopback
            bind, and any name elsewhere (the token guards those); once given,
            every bind accepts only loopback names and these.
        tls: serve HTTPS with this certificate and key (`stages.webrtc.tls`
            checks them); ``None`` = plain HTTP.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_sessions: int = 4
    max_pending: int = 2
    max_offer_bytes: int = 64 * 1024
    avatar_limits: AvatarLimits = field(default_factory=AvatarLimits)
    api_rate_per_s: float = 10.0
    api_burst: int = 40
    offer_rate_per_s: float = 0.5
    offer_burst: int = 4
    ice_host: str | None = None
    avatars_dir: Path | None = None
    session: SessionConfig = field(default_factory=SessionConfig)
    settings: LiveSettings = field(default_factory=lambda: LiveSettings(output=OutputMode.PASTE))
    notice: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        if self.max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be within 0-65535, got {self.port}")
        bad = [name for name in self.allowed_hosts if host_name(name) is None]
        if bad:
            raise ValueError(f"allowed hosts must be names or addresses such as gpu-box.local "
                             f"or 192.168.1.5, got {bad}")


WRONG_TOKEN_PAGE = ("wrong access token: open the exact URL 'vicocam serve' printed "
                    "(it carries ?token=...)")
PRIVATE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
"""Headers of the token exchange: nothing cached, no URL passed on as a referrer."""

OFFER_FAILED = "the session could not start (a server error; its log has the details)"
REQUEST_FAILED = "the request could not be handled (a server error; its log has the details)"
CROSS_SITE = "a request from another site's page is refused"
NOT_JSON = "the body must be JSON text (UTF-8)"
MAX_CONTROL_BYTES = 16 * 1024
"""Largest settings or avatar-pick body (a few dozen bytes in use)."""
BUSY_RETRY_S = 10.0
"""``Retry-After`` when every slot holds a live session (no deadline to go by)."""


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class SessionRefusedError(Exception):
    """An offer that did not become a session, and the answer the peer gets.

    ``status`` is the HTTP status it is answered with: 400 a bad offer (the
    message says what is wrong with it), 503 busy or out of capacity (with
    ``retry_after_s``, whole seconds, for ``Retry-After``), 500 a failure of
    the server (logged there; the message is fixed text). Messages are never
    an exception's text, so they are safe to send.
    """

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(status, message, retry_after_s)  # all of them: it pickles whole
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message

    def response(self) -> web.Response:
        """The JSON error answer, with ``Retry-After`` when there is one."""
        if self.retry_after_s is None:
            return _error(self.status, self.message)
        return _error(self.status, self.message, **{"Retry-After": str(self.retry_after_s)})


@web.middleware
async def _contained(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: what nobody foresaw is logged and answered with fixed text."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s could not be handled", request.method, request.path)
        return _error(500, REQUEST_FAILED)


HOST_REFUSED = ("this server does not answer to the Host name of this request (a guard "
                "against DNS rebinding); open it as localhost or 127.0.0.1, or allow the "
                "name with 'vicocam serve --allow-host NAME'")


def _host_guard(config: ServerConfig) -> Middleware:
    """A middleware that refuses requests for a foreign ``Host`` before any handler runs.

    It sits outside the API guards and covers the page and static files too:
    a rebound page must not read anything, not even the preset avatars. The
    message is fixed, so nothing of the request is echoed back.
    """
    allowlist = host_allowlist(config.host, config.allowed_hosts)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if allowlist is None or allowlist.allows(request.headers.get("Host")):
            return await handler(request)
        return _error(403, HOST_REFUSED)

    return guard


class WebRTCServer:
    """The signalling server and its sessions; `build_app` gives the aiohttp app.

    ``token`` is the token clients must send (``None`` when none is needed).
    ``prepare_avatar``, when given, prepares an uploaded or picked avatar
    before the session's settings name it (in a worker thread), so a picture
    the model cannot use (no face) is refused with the reason instead of
    being skipped silently by the session; it raises `ValueError` for that.
    """

    def __init__(self, config: ServerConfig | None = None,
                 factory: StageFactory = identity_factory, *,
                 clock: Callable[[], float] | None = None,
                 prepare_avatar: Callable[[AvatarKey], object] | None = None) -> None:
        self.config = config or ServerConfig()
        self.factory = factory
        self.prepare_avatar = prepare_avatar
        self.token = resolve_token(self.config.host, self.config.token)
        self.sessions: dict[str, Session] = {}
        c = self.config
        now = clock or time.monotonic
        self._api_limit = RateLimiter(c.api_rate_per_s, c.api_burst, clock=now)
        self._offer_limit = RateLimiter(c.offer_rate_per_s, c.offer_burst, clock=now)
        session_config = c.session
        if c.ice_host is not None and session_config.ice_allowed is None:
            session_config = dataclasses.replace(session_config, ice_allowed=(c.ice_host,))
        self._session_config = session_config

    # ---- the app ----------------------------------------------------------------
    def build_app(self) -> web.Application:
        client_max = self.config.avatar_limits.max_bytes + 64 * 1024
        app = web.Application(middlewares=[_contained, _host_guard(self.config), self._guard],
                              client_max_size=client_max)
        r = app.router
        r.add_get("/", self._index)
        r.add_static("/static/", STATIC_DIR)
        r.add_get("/api/config", self._client_config)
        r.add_post("/api/offer", self._offer)
        r.add_get("/api/avatars", self._avatar_list)
        r.add_get("/api/avatars/{name}", self._avatar_file)
        r.add_post("/api/sessions/{sid}/avatar", self._avatar_upload)
        r.add_post("/api/sessions/{sid}/settings", self._settings)
        r.add_get("/api/sessions/{sid}/stats", self._stats)
        r.add_delete("/api/sessions/{sid}", self._hang_up)
        app.on_shutdown.append(self._shutdown)
        return app

    async def close_all(self, reason: str = "the server is shutting down") -> None:
        await asyncio.gather(*(s.close(reason) for s in list(self.sessions.values())))

    async def _shutdown(self, app: web.Application) -> None:
        await self.close_all()

    # ---- guards -------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        return await handler(request)

    def _refusal(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin and not _same_origin(origin, request.host):
            return _error(403, CROSS_SITE)
        if self.token is not None:
            given = bearer_token(request.headers.get("Authorization"))
            given = given or request.cookies.get(token_cookie(request))
            if not token_matches(self.token, given):
                return _error(401, "missing or wrong access token; open the URL printed by "
                                   "'vicocam serve' (it carries ?token=...)")
        wait = self._api_limit.check(_client_key(request))
        if wait > 0:
            return _error(429, "too many requests; slow down",
                          **{"Retry-After": str(max(1, round(wait)))})
        return None

    # ---- static ----------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        if "token" in request.query:
            return self._exchange_token(request)
        return web.FileResponse(STATIC_DIR / "index.html",
                                headers={"Cache-Control": "no-store"})

    def _exchange_token(self, request: web.Request) -> web.StreamResponse:
        """``/?token=T``: the access cookie, and a redirect to the same page without ``T``.

        A wrong token gets 401 and no cookie, and guesses count against the
        client's API rate; a server that needs none only drops it from the URL.
        """
        if self._api_limit.check(_client_key(request)) > 0:
            return web.Response(status=429, text="too many requests; slow down")
        given = request.query.get("token")
        if self.token is not None and not token_matches(self.token, given):
            return web.Response(status=401, text=WRONG_TOKEN_PAGE, headers=PRIVATE_HEADERS)
        target = request.rel_url.with_query([(k, v) for k, v in request.query.items()
                                             if k != "token"])
        response = web.Response(status=303, headers={"Location": str(target),
                                                      **PRIVATE_HEADERS})
        if self.token is not None:
            response.set_cookie(token_cookie(request), self.token, path="/", httponly=True,
                                samesite="Strict", secure=request.secure)
        return response

    async def _client_config(self, request: web.Request) -> web.Response:
        c = self.config
        return web.json_response({
            "iceServers": self._ice_servers_json(),
            "maxAvatarBytes": c.avatar_limits.max_bytes,
            "strength": {"min": MIN_STRENGTH, "max": MAX_STRENGTH},
            "modes": [m.value for m in MotionMode],
            "outputs": [o.value for o in OutputMode],
            "settings": settings_reply(c.settings),
            "notice": c.notice,
        }, headers={"Cache-Control": "no-store"})  # it may carry TURN credentials

    def _ice_servers_json(self) -> list[dict[str, Any]]:
        """The ``RTCIceServer`` dictionaries for the page and clients, TURN credentials
        minted now where they come from a shared secret (`stages.webrtc.ice_servers`)."""
        servers = resolve_all(self._session_config.ice_servers, time.time())
        return [server.as_json() for server in servers]

    # ---- signalling --------------------------------------------------------------------
    async def _offer(self, request: web.Request) -> web.Response:
        """`_answer_offer`, with a fixed 500 for what nobody foresaw (logged with its traceback)."""
        try:
            return await self._answer_offer(request)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("an offer could not be handled")
            return _error(500, OFFER_FAILED)

    async def _answer_offer(self, request: web.Request) -> web.Response:
        wait = self._offer_limit.check(_client_key(request))
        if wait > 0:
            return _error(429, "too many connection attempts; wait and retry",
                          **{"Retry-After": str(max(1, round(wait)))})
        busy = self.admission()  # before the body is read: a flood costs no parsing
        if busy is not None:
            return busy.response()
        try:
            session_id, answer = await self.open_session(await self._read_offer(request))
        except OfferError as exc:
            return _error(400, str(exc))
        except SessionRefusedError as exc:
            return exc.response()
        return web.json_response(self._answer_reply(session_id, answer))

    def _answer_reply(self, session_id: str, answer: str) -> dict[str, Any]:
        """The offer's JSON reply (a cluster gateway adds where the session runs)."""
        return {"sdp": answer, "type": "answer", "session": session_id}

    async def open_session(self, sdp: str) -> tuple[str, str]:
        """Start a session for the offer ``sdp``; ``(session id, answer SDP)``.

        Every way in goes through here: ``POST /api/offer`` once it has read
        the body, and a cluster replica with the offer its gateway forwarded
        (`pipeline.app.cluster`), which has no HTTP listener of its own. In
        order: the offer is checked whole (`check_offer`), then admission
        (`admission`, again: others may have started meanwhile), then the
        session starts. Raises `SessionRefusedError` (400, 503 or 500) for each.
        The session is ``self.sessions[id]`` until it closes: its ``closed``
        event is set then, and ``close(reason)`` ends it early.
        """
        try:
            check_offer(sdp, self.config.max_offer_bytes)
        except OfferError as exc:
            raise SessionRefusedError(400, str(exc)) from None
        busy = self.admission()
        if busy is not None:
            raise busy
        return await self._start_session(sdp)

    def admission(self) -> SessionRefusedError | None:
        """The 503 an offer gets now, or ``None`` when a session may start.

        Busy while every session slot or the pending budget is taken; its
        ``Retry-After`` is when the first pending session must have connected.
        """
        pending = [s for s in self.sessions.values() if s.pending]
        if len(self.sessions) >= self.config.max_sessions:
            return _busy(f"the server is busy: {len(self.sessions)} sessions in use; "
                         "try again later", pending)
        if len(pending) >= self.config.max_pending:
            return _busy("the server is busy connecting other peers; try again in a few "
                         "seconds", pending)
        return None

    async def _read_offer(self, request: web.Request) -> str:
        """The offer's SDP from the body; `OfferError` for a body too large or malformed."""
        limit = self.config.max_offer_bytes
        if request.content_length is not None and request.content_length > limit + 1024:
            raise OfferError(f"the offer is too large ({request.content_length} bytes; "
                             f"the limit is {limit})")
        raw = await _read_capped(request, limit + 1024)
        if raw is None:
            raise OfferError(f"the offer is too large (the limit is {limit} bytes)")
        try:
            body = _parse_json(raw)
        except ValueError:
            raise OfferError("the offer must be JSON: {\"sdp\": \"...\", \"type\": \"offer\"}"
                             ) from None
        return offer_sdp(body)

    async def _start_session(self, sdp: str) -> tuple[str, str]:
        """Start a session for a checked, admitted offer; `SessionRefusedError` if it fails."""
        session_id = secrets.token_urlsafe(12)
        session = Session(session_id, self.factory, self._session_config,
                          on_closed=self._forget, initial=self.config.settings,
                          pick_avatar=self._pick_preset,
                          upload_avatar=self._take_upload,
                          max_upload_bytes=self.config.avatar_limits.max_bytes)
        self.sessions[session_id] = session
        try:
            answer = await session.answer(sdp)
        except OfferError as exc:
            await session.close(f"bad offer: {exc}")
            raise SessionRefusedError(400, str(exc)) from None
        except Exception:
            log.exception("session %s could not start", session_id)
            await session.close("failed to start")
            raise SessionRefusedError(500, OFFER_FAILED) from None
        log.info("session %s: started (%d in use)", session_id, len(self.sessions))
        return session_id, answer

    def _forget(self, session: Session) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        # aiortc's peer connections (transports, senders, rate buckets) and a
        # session's pipeline form reference cycles that only a full collection
        # frees; Python runs one rarely, so without this a server that sees
        # sessions come and go holds every closed one's threads and memory
        # (measured by `vicocam bench soak`). A collection is a short pause,
        # once per session end, shortly after it so its tasks have finished.
        asyncio.get_running_loop().call_later(CLOSED_COLLECT_DELAY_S, _collect_closed)

    # ---- per-session control ---------------------------------------------------------------
    def _session(self, request: web.Request) -> Session:
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such session (it ended)"}),
                                   content_type="application/json")
        return session

    async def _avatar_upload(self, request: web.Request) -> web.Response:
        session = self._session(request)
        try:
            if request.content_type == "application/json":
                name, avatar = self._preset(await _json_body(request))
                await self._prepare(avatar)
            else:
                name = request.headers.get("X-Filename", "upload")[:200]
                name, avatar = await self._take_upload(name, await request.read())
        except (AvatarError, ValueError) as exc:
            return _error(400, str(exc))
        except web.HTTPRequestEntityTooLarge:
            limit = self.config.avatar_limits.max_bytes
            return _error(400, f"the picture is too large; the limit is {limit / 1e6:.1f} MB")
        use_avatar(session.settings, session.avatar_names, name, avatar)
        reply: dict[str, Any] = {"avatar": name}
        if avatar is not None and avatar.image is not None:
            reply["height"], reply["width"] = avatar.image.shape[:2]
        return web.json_response(reply)

    async def _take_upload(self, name: str,
                           data: bytes) -> tuple[str | None, AvatarKey | None]:
        """An uploaded picture (the upload route's body, or a session's control channel),
        decoded and prepared off the loop; `AvatarError`/`ValueError` say why not."""
        avatar = await asyncio.to_thread(decode_avatar, data, self.config.avatar_limits)
        await self._prepare(avatar)
        return name, avatar

    async def _pick_preset(self, body: Any) -> tuple[str | None, AvatarKey | None]:
        """`_preset`, prepared (a session's control channel picks with it)."""
        name, avatar = self._preset(body)
        await self._prepare(avatar)
        return name, avatar

    async def _prepare(self, avatar: AvatarKey | None) -> None:
        """Prepare ``avatar`` off the loop; `ValueError` when the model cannot use it."""
        if avatar is not None and self.prepare_avatar is not None:
            await asyncio.to_thread(self.prepare_avatar, avatar)

    def _preset(self, body: Any) -> tuple[str | None, AvatarKey | None]:
        """``(name, avatar)`` a JSON pick asks for; ``name`` ``None`` = the server's avatar."""
        if not isinstance(body, dict) or "name" not in body:
            raise AvatarError('send {"name": "<preset>"} or {"name": null}')
        name = body["name"]
        if name is None:
            return None, self.config.settings.avatar
        path = self._preset_path(name) if isinstance(name, str) else None
        if path is None:
            raise AvatarError(f"no preset avatar named {name!r}")
        return path.name, decode_avatar(path.read_bytes(), self.config.avatar_limits)

    def _preset_path(self, name: str) -> Path | None:
        # Only names from the listing: no path from the request is ever joined.
        return next((p for p in self._presets() if p.name == name), None)

    def _presets(self) -> Iterator[Path]:
        folder = self.config.avatars_dir
        if folder is None or not folder.is_dir():
            return iter(())
        return (p for p in sorted(folder.iterdir())
                if p.is_file() and p.suffix.lower() in AVATAR_EXTENSIONS)

    async def _avatar_list(self, request: web.Request) -> web.Response:
        return web.json_response({"avatars": [p.name for p in self._presets()]})

    async def _avatar_file(self, request: web.Request) -> web.StreamResponse:
        path = self._preset_path(request.match_info["name"])
        if path is None:
            return _error(404, "no such avatar")
        return web.FileResponse(path)

    async def _settings(self, request: web.Request) -> web.Response:
        session = self._session(request)
        try:
            body = await _json_body(request)
            changes = settings_changes(body, session.settings.get())
            current = session.settings.update(**changes)
        except (ValueError, TypeError) as exc:
            return _error(400, f"bad settings: {exc}")
        return web.json_response(settings_reply(current, session.avatar_names))

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._session(request).stats())

    async def _hang_up(self, request: web.Request) -> web.Response:
        session = self._session(request)
        await session.close("the peer hung up")
        return web.json_response({"closed": session.id})


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    """The request body, or ``None`` as soon as it exceeds ``cap`` bytes (chunked bodies too)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: web.Request) -> Any:
    """A settings or avatar-pick body; `ValueError` with a fixed reason if too large or not JSON."""
    raw = await _read_capped(request, MAX_CONTROL_BYTES)
    if raw is None:
        raise ValueError(f"the body is too large (the limit is {MAX_CONTROL_BYTES} bytes)")
    return _parse_json(raw)


def _parse_json(raw: bytes) -> Any:
    """``raw`` as JSON, whatever charset the request claimed; `ValueError` with fixed text.

    The parser's own message (a position, a codec's complaint) is not passed on;
    nesting deep enough to exhaust the parser's recursion is malformed too.
    """
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError(NOT_JSON) from None


def _same_origin(origin: str, host: str) -> bool:
    try:
        return urlsplit(origin).netloc == host
    except ValueError:  # not a URL at all ("http://[")
        return False


def _busy(message: str, pending: list[Session]) -> SessionRefusedError:
    """A 503 whose ``Retry-After`` is when the first pending session must have connected."""
    wait = min((s.connect_left_s() for s in pending), default=BUSY_RETRY_S)
    return SessionRefusedError(503, message, max(1, math.ceil(wait)))


def offer_sdp(body: Any) -> str:
    """The SDP of an offer body ``{"sdp": "v=0...", "type": "offer"}``; `OfferError` if malformed.

    Only the envelope is checked here; `WebRTCServer.open_session` checks the SDP itself.
    """
    if not isinstance(body, dict) or body.get("type") != "offer":
        raise OfferError("the body must be {\"sdp\": \"...\", \"type\": \"offer\"}")
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise OfferError("the offer's sdp must be a session description starting with v=0")
    return sdp


def _client_key(request: web.Request) -> str:
    return request.remote or "unknown"


def token_cookie(request: web.Request) -> str:
    """The access cookie's name: one per server port, since cookies ignore ports.

    Two servers on one machine (``localhost:8080`` and ``localhost:8081``)
    with different tokens would otherwise overwrite each other's cookie.
    """
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else ""
    return f"vicocam-token-{port}"


def redacted(url: URL) -> str:
    """``url``'s path and query with every ``token`` value replaced by ``REDACTED``."""
    if "token" not in url.query:
        return url.path_qs
    query = [(k, "REDACTED" if k == "token" else v) for k, v in url.query.items()]
    return url.with_query(query).path_qs


class AccessLogger(AbstractAccessLogger):
    """One DEBUG line per request: client, method, path (token redacted), status, time.

    aiohttp's own access log writes the request line as sent, which would
    put the token of the printed URL into the log.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %s %d %.1f ms", request.remote, request.method,
                          redacted(request.rel_url), response.status, time * 1e3)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


# ---- running it -----------------------------------------------------------------------------
@contextlib.contextmanager
def _ice_scope(config: ServerConfig) -> Iterator[None]:
    if config.ice_host is None:
        yield
    else:
        with ice_host_addresses([config.ice_host]):
            yield


SHUTDOWN_GRACE_S = 5.0
"""On stop, requests still in flight get this long to finish (aiohttp waits 60 s by
default), so Ctrl-C ends the server within seconds even when a request is stuck."""


async def serve(server: WebRTCServer, *, ready: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run ``server`` until ``stop`` is set (or the task is cancelled).

    ``ready(url)`` is called once listening, with the page's URL (carrying
    the token when one is required; ``https`` with ``tls``). Raises
    `stages.webrtc.tls.TlsError` when the certificate cannot be used.
    """
    c = server.config
    ssl_context = server_context(c.tls) if c.tls is not None else None
    with _ice_scope(c):
        runner = web.AppRunner(server.build_app(), access_log_class=AccessLogger,
                               access_log=log.getChild("access"),
                               shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, c.host, c.port, ssl_context=ssl_context)
            await site.start()
            if ready is not None:
                port = _bound_port(runner, c.port)
                ready(page_url(c.host, port, server.token, secure=ssl_context is not None))
            await (stop or asyncio.Event()).wait()
        finally:
            await runner.cleanup()


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


def page_url(host: str, port: int, token: str | None, *, secure: bool = False) -> str:
    shown = f"[{host}]" if ":" in host else host
    suffix = f"/?token={token}" if token else "/"
    return f"{'https' if secure else 'http'}://{shown}:{port}{suffix}"


class ServerThread:
    """A server on its own event loop in a background thread (tests, benchmarks).

    ``with ServerThread(server) as url: ...`` starts it, gives the page URL,
    and stops it (closing every session) on exit.
    """

    def __init__(self, server: WebRTCServer, start_timeout_s: float = 30.0) -> None:
        self.server = server
        self._timeout = start_timeout_s
        self._ready = threading.Event()
        self._url: str | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="vicocam-serve", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(self._timeout) or self._url is None:
            self.__exit__()
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return self._url

    def __exit__(self, *exc: object) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=60)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result (to inspect sessions)."""
        if self._loop is None:
            raise RuntimeError("the server is not running")
        future = asyncio.run_coroutine_threadsafe(_call(fn), self._loop)
        return future.result(timeout=30)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def on_ready(url: str) -> None:
            self._url = url
            self._ready.set()

        await serve(self.server, ready=on_ready, stop=self._stop)


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def _collect_closed() -> None:
    """Free a closed session's reference cycles, then give the pages its frames
    held back to the system (`pipeline.memory`), off the loop: a trim walks
    every arena."""
    gc.collect()
    with contextlib.suppress(RuntimeError):  # the loop is closing: nothing left to trim for
        asyncio.get_running_loop().run_in_executor(None, release_free_memory)
