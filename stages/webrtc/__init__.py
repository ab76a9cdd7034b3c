"""WebRTC endpoints: ``vicocam serve`` (an aiohttp + aiortc server with a browser
page; the avatar model loaded once, one pipeline per peer) and ``vicocam
client`` (a local camera sent to a remote server, the avatar written to a
virtual camera or a file).

Modules:

- `server`: the aiohttp app, its routes and signalling; one `peer_session`
  per peer.
- `peer_session`: one peer's `Session` (its connection, pipeline and
  settings) and `SessionConfig`.
- `control_channel`: the page's controls, live stats and frame timing on a
  data channel of the session.
- `settings_messages`: what a settings change may say and how settings are
  reported, one rule set for the HTTP routes and the control channel.
- `uploads`: avatar upload validation; a session's settings are
  `stages.reenact.live_settings.LiveSettings`, the type ``vicocam run``'s
  keys write too.
- `tracks`: aiortc tracks <-> the runtime's `Source` and sink.
- `client`: ``vicocam client``'s side of the connection.
- `offers`: an offer checked whole (SDP, media, fingerprint, codecs) before
  anything is built for it.
- `gateway`: ``vicocam serve --cluster``'s front: the same routes, each
  session forwarded to a Ray Serve replica (`pipeline.app.cluster`).
- `reconnect`: when and how often a client whose session was lost calls
  again; `channel_upload`: an avatar sent over the data channel.
- `security`: access tokens and per-client rate limits; `tls`: HTTPS
  certificates, made or given.
- `impairment`: a seeded bad network (loss, delay, jitter, rate, blackouts)
  on a call's UDP sockets; `netem`: the same with the kernel's netem.
- `ice`: ICE kept on chosen addresses (loopback for tests).
- `ice_servers`: STUN and TURN servers with their credentials, fixed or
  minted per use from coturn's shared secret (TURN REST API).
- `stamp_relay`: measuring equipment, not part of a call: `StampRelay`
  carries the camera frame's stamp over to the avatar frame.
- `aiortc_patches`: the patches to aiortc's internals, installed by one call
  behind a version gate: `jitter` (frame completion on the RTP marker bit),
  `playout` (the browser asked to show returned frames when decoded),
  `bandwidth` (a floor under the upload bandwidth reported to the browser,
  its start bitrate), `encoder` (the returned VP8 bitrate raised in steps);
  and `timestamps`, which reads the RTP timestamp origins aiortc hides.
- ``static/``: the browser page.

The command parsers (`pipeline.app.commands.serve`), the avatar model behind
``serve`` (`pipeline.app.serving`) and the headless Chromium peer of tests
and benchmarks (`benchmarks.browser`) live outside this package.
aiortc and aiohttp are imported only by these modules, never by this package.
"""
