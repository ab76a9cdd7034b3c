"""The peers of ``vicocam bench cluster``: ``vicocam client`` calls in a process of their own.

Each peer is `stages.webrtc.client.run_client` with ``vicocam client``'s own
settings (it calls again when its session is lost: the reconnect measured is
the product's), sending a `CountedCamera` (the synthetic person, each
frame's index stamped in, paced by the client's runtime) and booking every
returned frame with `benchmarks.network.ReturnLog`. The peers live in a
child process so that their codecs use the machine as remote peers would,
not the gateway's interpreter.

One process runs one phase, told by the parent over a pipe what happens
when (`run_phase`): the peers join one after another (each once the one
before got video back, so the cluster places them one at a time), then the
process says ``{"joined": t}``, runs ``seconds``, says ``{"ending": t}``,
hangs every peer up and answers ``{"done": [peer_record, ...]}``. Times
are `time.monotonic` seconds, which every process of the machine shares.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.network import ReturnLog
from benchmarks.soak_peers import LOOPBACK, StampedCamera
from pipeline.frame import Frame, Image
from pipeline.stage import SourceFrame

CLIP_FRAMES = 90


@dataclass(frozen=True, slots=True)
class PeerPlan:
    """What the peers' process does.

    Attributes:
        url: the gateway's base URL.
        sessions: peers (each holds one session at a time).
        seconds: how long they run together once all joined.
        camera: the synthetic camera's width, height and fps.
        join_timeout_s: longest wait for a joining peer's first returned frame.
    """

    url: str
    sessions: int
    seconds: float
    camera: tuple[int, int, int] = (320, 240, 30)
    join_timeout_s: float = 60.0


class CountedCamera(StampedCamera):
    """A `StampedCamera` that notes when it gave each frame (``reads``, monotonic seconds)."""

    def __init__(self, clip: Sequence[Image], fps: int) -> None:
        super().__init__(clip, fps)
        self.reads: list[float] = []

    def read(self) -> SourceFrame | None:
        frame = super().read()
        if frame is not None:
            self.reads.append(time.monotonic())
        return frame


class FirstReturn(ReturnLog):
    """A `ReturnLog` that also sets ``first`` at the first returned frame."""

    def __init__(self, camera: StampedCamera) -> None:
        super().__init__(camera)
        self.first = asyncio.Event()  # set on the loop: a non-blocking stage runs there

    def process(self, frame: Frame) -> Frame:
        self.first.set()
        return super().process(frame)


@dataclass(eq=False)
class BenchPeer:
    camera: CountedCamera
    log: FirstReturn
    call: asyncio.Task[Any]


def render_clip(camera: tuple[int, int, int], frames: int = CLIP_FRAMES) -> list[Image]:
    """The synthetic held-out person at the camera's size, rendered once."""
    from benchmarks.live import first_frames
    from stages.reenact.person import PersonConfig, PersonSource

    width, height, fps = camera
    return first_frames(PersonSource(PersonConfig(width=width, height=height, fps=fps)), frames)


def start_peer(plan: PeerPlan, clip: Sequence[Image]) -> BenchPeer:
    """One ``vicocam client`` call with its defaults (it reconnects when its session is lost)."""
    from stages.webrtc.client import ClientConfig, run_client

    camera = CountedCamera(clip, plan.camera[2])
    log = FirstReturn(camera)
    config = ClientConfig(server=plan.url, ice_host=LOOPBACK,
                          connect_timeout_s=plan.join_timeout_s)
    return BenchPeer(camera, log, asyncio.create_task(run_client(config, camera, log)))


async def first_frame(peer: BenchPeer, timeout_s: float) -> bool:
    """Wait for ``peer``'s first returned frame, the end of its call, or ``timeout_s``."""
    first = asyncio.create_task(peer.log.first.wait())
    await asyncio.wait({first, peer.call}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    first.cancel()
    return peer.log.first.is_set()


def peer_record(peer: BenchPeer, outcome: Any) -> dict[str, Any]:
    """What one peer did, plain and picklable: its calls, returned frames and camera reads."""
    record: dict[str, Any] = {"frames": peer.log.frames, "reads": peer.camera.reads,
                              "calls": [], "error": None}
    if isinstance(outcome, BaseException):
        record["error"] = f"{type(outcome).__name__}: {outcome}"
        return record
    record["calls"] = [{k: v for k, v in dataclasses.asdict(c).items()
                        if k not in ("network", "reassembly")} for c in outcome.calls]
    record["frames_sent"] = outcome.frames_sent
    return record


async def run_phase(conn: Connection, plan: PeerPlan, clip: Sequence[Image]) -> None:
    """Join, run, hang up, answering the parent as the module docstring says."""
    peers: list[BenchPeer] = []
    for _ in range(plan.sessions):
        peers.append(start_peer(plan, clip))
        await first_frame(peers[-1], plan.join_timeout_s)
    conn.send({"joined": time.monotonic()})
    await asyncio.sleep(plan.seconds)
    conn.send({"ending": time.monotonic()})
    for peer in peers:
        peer.camera.end()
    outcomes = await asyncio.gather(*(p.call for p in peers), return_exceptions=True)
    conn.send({"done": [peer_record(p, o) for p, o in zip(peers, outcomes, strict=True)]})


def peers_main(conn: Connection, plan: PeerPlan) -> None:
    """The child process: render the clip, run one phase, report."""
    from stages.webrtc.ice import ice_host_addresses

    logging.basicConfig(level=logging.ERROR,
                        format="cluster peers: %(levelname)s %(name)s: %(message)s")
    clip = render_clip(plan.camera)
    # Once for the whole process: the calls' own patches come and go in any order.
    with ice_host_addresses([LOOPBACK]):
        asyncio.run(run_phase(conn, plan, clip))
