"""``vicocam serve --cluster``: avatar sessions on a Ray Serve cluster, past one machine.

The mapping. Each Ray Serve replica (`replica.SessionHost`) is what one
``vicocam serve`` process runs, without its HTTP listener: one model (its
engines and the cross-session batcher, loaded once) and up to
``sessions_per_replica`` live sessions. A session is one long-lived
streaming request to a replica: the offer goes in, the answer comes out
first, then a small stats item every second until the session closes (the
peer leaves, its media stalls, or the request is cancelled). So Ray Serve
does the placement by itself: its router puts each new session on a replica
with room (``max_ongoing_requests`` = sessions per replica) and its
autoscaler counts live sessions as ongoing requests, adding replicas up to
``max_replicas`` when sessions wait for room and removing idle ones after
``downscale_delay_s`` (`config.deployment_options`).

The gateway (`stages.webrtc.gateway.ClusterGateway`, run by this command)
serves the same page, ``/api/config``, presets, token, TLS and rate limits
as ``vicocam serve`` and forwards each offer through a Ray Serve handle
(`runtime.SessionHosts.open_stream`). Media flows directly between the peer
and the replica's machine (ICE candidates of that machine; ``--stun`` and
``--turn`` for peers behind NAT: every replica gets the gateway's ICE
servers in its pickled `ReplicaConfig`, and with ``--turn-secret`` mints its
own TURN credentials for each session's side, as the gateway does for each
page); controls and stats use the session's data channel, so no HTTP
request after the offer needs to reach that replica.

Faults.

- A replica dies: its streams fail at the gateway at once (Ray reports the
  actor's death), or go silent for ``heartbeat_timeout_s`` if its machine
  vanished; the gateway forgets those sessions and logs it. Their peers lose
  media and the session's data channel within seconds and reconnect (the
  page and ``vicocam client``), landing on a replica with room. Ray Serve's
  controller replaces the replica (health checks every 2 s). Sessions on
  other replicas lose nothing: each is its own request on its own replica.
- The cluster is full (live sessions plus offers awaiting their answer reach
  ``max_replicas x sessions_per_replica``): a new offer gets 503 "no
  capacity" with ``Retry-After`` at once; Ray's own queue limit
  (``max_queued_requests``) is a backstop answered the same way.
- Scaling up: an offer that finds every replica full waits in Ray's queue
  while a replica starts, answered once it is up, or 503 after
  ``answer_timeout_s``.
- Scaling down picks replicas by Ray's rules, not by their sessions: a
  replica being stopped takes no new session and waits up to
  ``drain_timeout_s`` for its live ones to end before it stops with them.
- The gateway stops (Ctrl-C): it cancels every stream (the replicas close
  those sessions), deletes the application and stops a Ray it started.

Modules: `config` (the typed configs and Ray Serve's options), `replica`
(the deployment class), `runtime` (the only one importing Ray: start or
join a cluster, deploy, kill a replica), `options` and `command` (the
command line). Ray is imported only when ``--cluster`` is used; without it
the command says to ``pip install 'vicocam[cluster]'``.
"""
