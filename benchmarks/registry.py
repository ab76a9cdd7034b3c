"""The benchmarks `vicocam bench NAME` knows, resolved lazily by name.

Each entry names a function ``fn(options: BenchOptions) -> dict`` so that a
benchmark's heavy imports happen only when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trt_engines.bundle import ModelSpec


MAX_SESSIONS = 8
"""The sessions benchmark's largest N unless ``--max-sessions`` says otherwise."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What ``vicocam bench`` passes every benchmark; each takes what applies to it.

    Attributes:
        seconds: rough run time (``None``: the benchmark's own default).
        pin: WebRTC benchmarks run the browser and the server on separate
            cores (as on separate machines); ``False`` lets them share all
            cores (the same-laptop worst case).
        model: the model (``--backend``, ``--device``, ``--precision``...) for
            the benchmarks that run one model (live, sessions); ``None`` =
            their default (the bundled model on the CPU).
        max_sessions: the sessions benchmark's largest N (``None``: its default).
        json_path: where the figures go; benchmarks that draw a chart put it beside.
        mode: the soak's mode, ``"serve"`` or ``"run"`` (``None``: serve); the
            network benchmark's link, ``"user"`` or ``"kernel"`` (``None``: user).
        sessions, replicas: the cluster benchmark's sessions and Ray Serve
            replicas (``None``: its defaults, 4 and 2).
        stage_threads: the runtime's worker threads for stages in the
            contention and webrtc-model benchmarks (``None``: the runtime's
            default, one per core); a number at or above the stages gives
            each its own, as before stages shared threads.
        adaptive_in_flight: the WebRTC and sessions benchmarks' sessions let the
            head limiter follow what pays, as ``vicocam serve`` does; ``False``
            keeps a fixed limit (``--no-adaptive-in-flight``).
        freeze_heap: the WebRTC benchmarks' server runs in a frozen heap, as
            ``vicocam serve`` does (`pipeline.heap`); ``False`` measures it
            without, as before it did.
        encode_in_sink: the WebRTC benchmarks' sessions encode the returned
            video in their sink stage, as ``vicocam serve`` does; ``False``
            leaves it to aiortc's executor (``--encode-in aiortc``).
        burners: processes spinning on every core beside the WebRTC
            benchmarks' browser and server (`benchmarks.burners`).
        burner_counts: the contention benchmark's numbers of burners
            (``None``: its default, 0, 1, 2 and 6).
    """

    seconds: float | None = None
    pin: bool = True
    model: ModelSpec | None = None
    max_sessions: int | None = None
    json_path: Path | None = None
    mode: str | None = None
    sessions: int | None = None
    replicas: int | None = None
    stage_threads: int | None = None
    adaptive_in_flight: bool = True
    freeze_heap: bool = True
    encode_in_sink: bool = True
    burners: int = 0
    burner_counts: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class BenchSpec:
    name: str
    target: str  # "module:function"
    help: str

    def load(self) -> Callable[[BenchOptions], dict[str, Any]]:
        module, _, func = self.target.partition(":")
        fn: Callable[[BenchOptions], dict[str, Any]] = getattr(
            importlib.import_module(module), func
        )
        return fn


_SPECS = (
    BenchSpec("train", "benchmarks.entry:train", "training steps per second on the CPU"),
    BenchSpec("overhead", "benchmarks.entry:overhead", "runtime cost per stage vs a bare loop"),
    BenchSpec(
        "overload", "benchmarks.entry:overload", "30 fps into a 50 ms stage: rate, latency, drops"
    ),
    BenchSpec(
        "pipelining", "benchmarks.entry:pipelining", "two 20 ms stages pipelined vs sequential"
    ),
    BenchSpec("lossless", "benchmarks.entry:lossless", "offline file render: count and order"),
    BenchSpec(
        "live", "benchmarks.entry:live", "live avatar path at 640x480@30: rate, latency, drops"
    ),
    BenchSpec(
        "sessions",
        "benchmarks.entry:sessions",
        "1, 2, ... avatar sessions at once as serve builds them: batched vs unbatched",
    ),
    BenchSpec(
        "contention",
        "benchmarks.entry:contention",
        "live avatar path beside 0-6 CPU burners: adaptive vs fixed head limiter",
    ),
    BenchSpec(
        "camera-loss",
        "benchmarks.entry:camera_loss",
        "virtual camera through a camera unplugged for --seconds (5): rate, card, resume",
    ),
    BenchSpec("track", "benchmarks.entry:track", "face tracker on real clips in a moving canvas"),
    BenchSpec(
        "backends", "benchmarks.entry:backends", "model engines per CPU backend: ms per frame"
    ),
    BenchSpec(
        "model",
        "benchmarks.entry:model",
        "per configuration: params, GFLOPs/frame, CPU ms/frame per backend, ORT parity",
    ),
    BenchSpec(
        "flood",
        "benchmarks.entry:flood",
        "1,000 offers/s from many addresses for --seconds (10) against 2 live sessions",
    ),
    BenchSpec(
        "network",
        "benchmarks.entry:network",
        "the avatar over loss, delay, a 1 Mbit/s cap and a 3 s blackout: fps, freezes, recovery",
    ),
    BenchSpec(
        "webrtc",
        "benchmarks.entry:webrtc",
        "headless Chromium through vicocam serve --identity: fps, freezes, latency",
    ),
    BenchSpec(
        "webrtc-face",
        "benchmarks.entry:webrtc_face",
        "as webrtc, with a synthetic person as the camera instead of the test pattern",
    ),
    BenchSpec(
        "webrtc-model",
        "benchmarks.entry:webrtc_model",
        "headless Chromium through vicocam serve with the avatar model: fps, freezes, latency",
    ),
    BenchSpec(
        "soak",
        "benchmarks.entry:soak",
        "--minutes M (30) of serve with 3 churning peers, or --mode run: RSS, threads, fds...",
    ),
    BenchSpec(
        "cluster",
        "benchmarks.entry:cluster",
        "serve --cluster on a local Ray: placement, first frame, fps, a replica killed",
    ),
)

BENCHMARKS: Mapping[str, BenchSpec] = MappingProxyType({s.name: s for s in _SPECS})
