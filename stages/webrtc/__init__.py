"""WebRTC endpoints: ``vicocam serve`` (an aiohttp + aiortc server with a browser
page; the avatar model loaded once, one pipeline per peer) and ``vicocam
client`` (a local camera sent to a remote server, the avatar written to a
virtual camera or a file).

Modules: `jitter` (frame completion on the RTP marker bit), `playout` (the
browser asked to show returned frames when decoded), `bandwidth` (a floor
under the upload bandwidth reported to the browser, its start bitrate),
`encoder` (the returned VP8 bitrate raised in steps), `tracks` (aiortc
tracks <-> the runtime's `Source` and sink), `settings` (avatar upload
validation; a session's settings are `stages.reenact.settings.LiveSettings`,
the type ``vicocam run``'s keys write too), `session`, `server`, `model` (the
avatar model behind ``serve``, and the stamp relay for latency measurements),
`client`, `ice` (loopback ICE for tests), `browser` (a headless Chromium peer
for tests and benchmarks).
aiortc and aiohttp are imported only by these modules, never by this package.
"""
