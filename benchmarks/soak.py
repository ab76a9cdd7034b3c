"""Does vicocam hold up for the length of a meeting? ``vicocam bench soak``.

Two modes, the same samples:

serve (default): the server ``vicocam serve`` runs, built by its own code from
    its own defaults (`pipeline.app.commands.serve.build_server`: the bundled
    model, batching on, 4 sessions at most), in this process on 127.0.0.1,
    with a `StampRelay` around the session factory so a peer can tell which
    camera frame each returned frame shows. 3 aiortc peers (``vicocam client``
    calls, `benchmarks.soak_peers`, in a child process so the counts below
    are the server's own) send a stamped synthetic camera at 30 fps; every
    ``churn_s`` (20 s) the oldest hangs up and a new one joins.
run: the live path ``vicocam run`` builds (its parser and
    `pipeline.app.avatar_run.build_avatar_run`, the synthetic driver) into
    the virtual camera, whose pyvirtualcam backend is a registered one that
    counts frames and keeps none (``run_sink="null"``: the null sink).

Before the first session RSS is read (cold idle). In serve mode a warm-up
follows: the soak's peers join, stay ``warmup_s`` and leave, and once their
sessions closed RSS is read again (the warm baseline: what the first
sessions load once, such as codec libraries, engine caches and arenas).

Every ``sample_s`` (10 s) a sample: this process's RSS, threads and open file
descriptors, per session its fps and latency p50/p95 over the window (serve:
camera capture to the frame decoded back at the peer; run: capture to the
sink), the sessions' drops and failed frames in the window. Threads and fds
are also read just before each churn, then every ``poll_s`` until they are
back at that level (`ChurnWatch`), and ``settle_s`` after it began. Threads
are told apart by name: Python's, and the native ones by the OS name of the
thread that started them (`named_os_threads`, `native_threads`). Once every
peer has left (or the run ended) and ``close_settle_s`` passed, RSS is read,
then again after a garbage collection and ``malloc_trim`` (what the
allocator held but did not use).

`benchmarks.soak_figures` turns the record into the issue's targets and a
chart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from benchmarks.soak_peers import (
    LEAVE_TIMEOUT_S,
    LOOPBACK,
    MinuteBook,
    PeerHost,
    latency_summary,
)

if TYPE_CHECKING:
    from stages.webrtc.server import ServerThread, WebRTCServer

MODES = ("serve", "run")
SERVE_ARGS = ("serve", "--port", "0", "--ice-host", LOOPBACK)
"""``vicocam serve``'s arguments for the soak: its defaults, on a free loopback port."""
COUNTING_BACKEND = "vicocam-soak-counter"
"""The pyvirtualcam backend the run mode registers (`CountingCamera`)."""
CLOSE_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """Knobs of `run_soak`.

    Attributes:
        seconds: how long, from the first peer joining (or the run starting).
        mode: ``"serve"`` or ``"run"`` (see the module docstring).
        peers: peers at once (serve).
        churn_s: one peer leaves and a new one joins this often (serve).
        sample_s: how often a sample is taken.
        settle_s: after a churn, threads and held fds (`fd_counts`) must come
            back to their level before it within this long from its start
            (`ChurnWatch`); then they are read once more (``after``). It ends
            before the next churn, so each churn is judged on its own.
        poll_s: how often threads and fds are read after a churn until back.
        close_settle_s: from the last session closing to the RSS reading.
        warmup_s: serve: before the soak, ``peers`` peers join, stay this long
            and leave; RSS once they closed is the warm baseline (what the
            first sessions load once). 0: no warm-up.
        run_sink: ``"virtualcam"`` (through `CountingCamera`) or ``"null"`` (run).
    """

    seconds: float = 30 * 60.0
    mode: str = "serve"
    peers: int = 3
    churn_s: float = 20.0
    sample_s: float = 10.0
    settle_s: float = 18.0
    poll_s: float = 0.25
    close_settle_s: float = 5.0
    warmup_s: float = 5.0
    run_sink: str = "virtualcam"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"soak mode must be one of {MODES}, got {self.mode!r}")
        if min(self.seconds, self.churn_s, self.sample_s, self.peers, self.poll_s) <= 0:
            raise ValueError("soak seconds, intervals and peers must be > 0")
        if self.warmup_s < 0:
            raise ValueError("warmup_s must be >= 0")
        if not 0 < self.settle_s < self.churn_s:
            raise ValueError("settle_s must lie between 0 and churn_s")
        if self.run_sink not in ("virtualcam", "null"):
            raise ValueError(f"run_sink must be virtualcam or null, got {self.run_sink!r}")


@dataclass
class SoakRecord:
    """What a soak saw (`benchmarks.soak_figures` reads it).

    ``idle``: the probe before the first session, ``idle_trimmed`` the same
    after a collection and ``malloc_trim`` (``idle_freed``: what those freed,
    see `release_freed_memory`); ``idle_warm``, ``idle_warm_trimmed`` and
    ``idle_warm_freed``: the same once the warm-up's sessions closed (empty
    without one; ``warmup``: how it went); ``after_close``: once the last
    session closed; ``after_trim``: then after a collection and
    ``malloc_trim`` (``after_freed``).
    ``lost``: sessions that ended without being asked; ``faults``: failed
    looks at the server; ``errors``: records logged at ERROR or above.
    """

    config: SoakConfig
    facts: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    churns: list[dict[str, Any]] = field(default_factory=list)
    minutes: list[dict[str, Any]] = field(default_factory=list)
    lost: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    joined: int = 0
    left: int = 0
    not_closed: int = 0
    idle_trimmed: dict[str, Any] = field(default_factory=dict)
    after_close: dict[str, Any] = field(default_factory=dict)
    after_trim: dict[str, Any] = field(default_factory=dict)
    idle_freed: dict[str, Any] = field(default_factory=dict)
    after_freed: dict[str, Any] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)
    idle_warm: dict[str, Any] = field(default_factory=dict)
    idle_warm_trimmed: dict[str, Any] = field(default_factory=dict)
    idle_warm_freed: dict[str, Any] = field(default_factory=dict)


# ---- probes --------------------------------------------------------------------------
def process_probe() -> dict[str, Any]:
    """This process's resident memory (MB; anonymous: the heaps, file: mapped libraries
    and files), threads (all; Python's), open file descriptors (all; held: see
    `fd_counts`) (Linux), and the machine's load."""
    status = _proc_status()
    return {"rss_mb": _mb(status, "VmRSS"), "rss_anon_mb": _mb(status, "RssAnon"),
            "rss_file_mb": _mb(status, "RssFile"), **quick_counts(status),
            "python_threads": threading.active_count(), "load_1m": _load()}


def _load() -> float | None:
    """The machine's 1-minute load average: it is shared, and a busy minute shows here."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def memory_probe() -> dict[str, Any]:
    """`process_probe` with what Python holds: live objects the collector tracks, modules."""
    return {**process_probe(), "python_objects": len(gc.get_objects()),
            "modules": len(sys.modules)}


def _mb(status: dict[str, str], key: str) -> float | None:
    parts = status.get(key, "").split()
    return round(int(parts[0]) / 1024, 1) if parts else None


def _proc_status() -> dict[str, str]:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def counts_probe(readings: int = 5, every_s: float = 0.2) -> dict[str, Any]:
    """Threads and fds for a churn's before/after: the least of a few readings over a
    second (a worker thread or a socket of that instant is not a level), with RSS,
    and what the threads and fds are, to tell what a rise is made of."""
    probes = []
    for i in range(readings):
        time.sleep(every_s if i else 0.0)
        probes.append(process_probe())
    least = {key: min((p[key] for p in probes if p[key] is not None), default=None)
             for key in ("threads", "fds", "fds_held")}
    return {**probes[-1], **least, **tallies()}


def quick_counts(status: dict[str, str] | None = None) -> dict[str, int | None]:
    """This process's threads and open fds now (`fd_counts`): what a churn's watch polls."""
    threads = (_proc_status() if status is None else status).get("Threads")
    return {"threads": int(threads) if threads else None, **fd_counts()}


def fd_counts() -> dict[str, int | None]:
    """Open file descriptors: ``fds`` all of them, ``fds_held`` those less the TCP
    connections a client made to this server and still holds open
    (`client_connections`): a peer's idle HTTP keep-alive is the peer's to close
    (aiohttp's client closes it 15 to 31 s after its last request), and one the
    client closed but the server did not is still held."""
    targets = _fd_targets()
    if not targets:
        return {"fds": None, "fds_held": None}
    return {"fds": len(targets), "fds_held": len(targets) - len(client_connections(targets))}


def _fd_targets() -> list[str]:
    """What each open fd points at (``socket:[123]``, ``pipe:[45]``, a path)."""
    targets = []
    for fd in _listing("/proc/self/fd"):
        with contextlib.suppress(OSError):
            targets.append(str(fd.readlink()))
    return targets


def client_connections(targets: list[str]) -> set[str]:
    """The socket inodes among ``targets`` that are TCP connections to one of this
    process's listening ports, open at both ends (``ESTABLISHED``)."""
    ours = {t[len("socket:["):-1] for t in targets if t.startswith("socket:[")}
    rows = [row for name in ("tcp", "tcp6") for row in _tcp_sockets(name) if row[2] in ours]
    listening = {port for port, state, _ in rows if state == TCP_LISTEN}
    return {inode for port, state, inode in rows if state == TCP_ESTABLISHED and port in listening}


TCP_ESTABLISHED, TCP_LISTEN = "01", "0A"
"""States in ``/proc/net/tcp`` (hex)."""


def _tcp_sockets(name: str) -> list[tuple[str, str, str]]:
    """``(local port, state, inode)`` of each socket in ``/proc/self/net/<name>``."""
    try:
        lines = Path(f"/proc/self/net/{name}").read_text().splitlines()[1:]
    except OSError:
        return []
    rows = [line.split() for line in lines]
    return [(parts[1].rsplit(":", 1)[-1], parts[3], parts[9]) for parts in rows if len(parts) > 9]


def tallies() -> dict[str, dict[str, int]]:
    """What the threads and fds are: Python's threads by name, the others by their
    OS name (`native_threads`), the fds by kind."""
    return {"thread_names": thread_names(), "native_threads": native_threads(),
            "fd_kinds": fd_kinds()}


def thread_names() -> dict[str, int]:
    """Python's threads by name, numbers left out (``ThreadPoolExecutor-3_0`` ->
    ``ThreadPoolExecutor-_``); threads started outside Python (a model runtime's
    own) are not among them: see `native_threads`."""
    names = collections.Counter(re.sub(r"\d+", "", t.name) for t in threading.enumerate())
    return dict(sorted(names.items()))


def native_threads() -> dict[str, int]:
    """The threads of this process Python did not start (a codec's, a model runtime's),
    by their OS name (``/proc/self/task/*/comm``), numbers left out.

    A thread is born with the OS name of the thread that started it, and inside
    `named_os_threads` Python's threads carry their own names: an swscale worker
    a session's ``vicocam-source_0`` thread started reads ``source_``, a libvpx
    decoder's worker ``video-decoder``; ``python`` (or the program's name) is
    one started before the naming (at import). Libraries that name their
    threads show theirs.
    """
    ours = {t.native_id for t in threading.enumerate()}
    names: collections.Counter[str] = collections.Counter()
    for task in _listing("/proc/self/task"):
        if task.name.isdigit() and int(task.name) not in ours:
            with contextlib.suppress(OSError):
                names[re.sub(r"\d+", "", (task / "comm").read_text().strip())] += 1
    return dict(sorted(names.items()))


@contextlib.contextmanager
def named_os_threads() -> Iterator[None]:
    """While inside, every Python thread carries its name in the OS too (Python 3.11
    leaves them all ``python``), so that `native_threads` tells who started a
    native thread. New threads are named as they start (`threading.setprofile`)."""
    threading.setprofile(_name_new_thread)
    try:
        for thread in threading.enumerate():
            _set_os_name(thread.native_id, thread.name)
        yield
    finally:
        threading.setprofile(None)


def _name_new_thread(frame: Any, event: str, arg: Any) -> None:
    """A new thread's first profile event: name it in the OS, then profile no more."""
    sys.setprofile(None)
    _set_os_name(threading.get_native_id(), threading.current_thread().name)


def _set_os_name(native_id: int | None, name: str) -> None:
    """Set a thread's OS name: 15 bytes at most, so ``vicocam-`` is left out."""
    if native_id is None:
        return
    short = name.removeprefix("vicocam-")[:15]
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{native_id}/comm").write_text(short)


def fd_kinds() -> dict[str, int]:
    """This process's open file descriptors by kind: socket, pipe, anon_inode, file,
    and ``client_connection``: a socket `client_connections` finds."""
    targets = _fd_targets()
    clients = client_connections(targets)
    kinds: collections.Counter[str] = collections.Counter()
    for target in targets:
        kind = target.split(":", 1)[0] if ":" in target else "file"
        if kind == "socket" and target[len("socket:["):-1] in clients:
            kind = "client_connection"
        kinds["anon_inode" if kind.startswith("anon_inode") else kind] += 1
    return dict(sorted(kinds.items()))


def _listing(folder: str) -> list[Path]:
    try:
        return list(Path(folder).iterdir())
    except OSError:
        return []


def release_freed_memory() -> dict[str, Any]:
    """A full collection, then the allocator's free pages back to the system.

    Returns what the collection freed (`collect_cycles`) and ``malloc_trim``:
    whether the C library has one (glibc); without it only the collection ran.
    """
    from pipeline.memory import release_free_memory

    freed = collect_cycles()
    return {**freed, "malloc_trim": release_free_memory()}


def collect_cycles(top: int = 15) -> dict[str, Any]:
    """A full collection that first counts what it frees: ``cycle_objects`` (objects
    only the cycle collector frees: unreachable reference cycles), the commonest
    classes among them, Python's built-in types left out (``cycle_types``), and
    the count of every class among them that holds a session's resources
    (``cycle_owners``, `OWNERS`)."""
    debug = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collection finds, to count it
    try:
        gc.collect()
        count = len(gc.garbage)
        kinds = collections.Counter(_class_name(obj) for obj in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(debug)
    gc.collect()  # now free them
    kinds.pop("", None)
    owners = {name: n for name, n in sorted(kinds.items()) if OWNERS.search(name)}
    return {"cycle_objects": count, "cycle_types": dict(kinds.most_common(top)),
            "cycle_owners": owners}


OWNERS = re.compile(r"(Session|Pipeline|PeerConnection|Encoder|Decoder|Sender|Receiver|"
                    r"Transport|Track|Source|Sink)$")
"""Classes that hold a session's resources (threads, codecs, sockets): `collect_cycles`
lists every one found in garbage cycles, however few."""


def _class_name(obj: object) -> str:
    kind = type(obj)
    return "" if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class ErrorLog(logging.Handler):
    """Counts the records logged at ERROR or above while entered; keeps the first few."""

    def __init__(self, keep: int = 10) -> None:
        super().__init__(logging.ERROR)
        self.keep = keep
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append(f"{record.name}: {record.getMessage()}"[:400])

    def __enter__(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


def schedule(config: SoakConfig) -> list[tuple[float, str]]:
    """``(seconds from the start, "sample" | "churn" | "settle")`` in order.

    A sample due with a churn comes first (it sees the sessions before it);
    a churn is left out when its settle reading would fall past the end.
    """
    samples = [(t, "sample") for t in ticks(config.seconds, config.sample_s)]
    churns: list[tuple[float, str]] = []
    if config.mode == "serve":
        churns = [(t, "churn") for t in ticks(config.seconds, config.churn_s)
                  if t + config.settle_s < config.seconds]
    settles = [(t + config.settle_s, "settle") for t, _ in churns]
    order = {"sample": 0, "churn": 1, "settle": 2}
    return sorted(samples + churns + settles, key=lambda event: (event[0], order[event[1]]))


def ticks(seconds: float, step: float) -> list[float]:
    """``step, 2 step, ...`` up to ``seconds``, and ``seconds`` itself."""
    times = [step * k for k in range(1, int(seconds / step + 1e-9) + 1)]
    return times if times and abs(times[-1] - seconds) < 1e-6 else [*times, seconds]


def follow(events: list[tuple[float, str]], start: float,
           handlers: dict[str, Callable[[], None]],
           between: Callable[[], float | None] = lambda: None) -> None:
    """Call each event's handler at its time (at once when late); while waiting,
    ``between``, which returns when it wants to run again (seconds; ``None``: not
    before the next event)."""
    for at, kind in events:
        while (left := start + at - time.monotonic()) > 0:
            again = between()
            time.sleep(max(0.0, min(left if again is None else again,
                                    start + at - time.monotonic())))
        handlers[kind]()


def progress(record: SoakRecord, sample: dict[str, Any]) -> None:
    print(f"soak {sample['t_s'] / 60:5.1f} min: rss {sample['rss_mb']} MB, "
          f"{sample['threads']} threads, {sample['fds']} fds, {len(sample['sessions'])} "
          f"sessions, fps min {sample['fps_min']}, p50 {sample['latency_p50_ms']} ms, "
          f"drops {sample['drops']}, lost {len(record.lost)}", file=sys.stderr, flush=True)


# ---- serve ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Served:
    """The running server of a soak and what it runs."""

    thread: ServerThread
    server: WebRTCServer
    url: str
    facts: dict[str, Any]


@contextlib.contextmanager
def served() -> Iterator[Served]:
    """``vicocam serve`` as its command builds it, with a `StampRelay`, in a thread."""
    from pipeline.app.cli import build_parser
    from pipeline.app.commands.serve import build_server, serve_config
    from stages.webrtc.server import ServerThread, WebRTCServer
    from stages.webrtc.stamp_relay import StampRelay

    args = build_parser().parse_args(SERVE_ARGS)
    built, service = build_server(args)
    if service is None:
        raise RuntimeError("the soak needs the model server, not --identity")
    server = WebRTCServer(built.config, StampRelay(built.factory),
                          prepare_avatar=built.prepare_avatar)
    batching = serve_config(args).batching
    facts = {"server": "vicocam " + " ".join(SERVE_ARGS), "model": service.bundle.label,
             "trained": service.bundle.trained, "max_sessions": built.config.max_sessions,
             "batching": None if batching is None else dataclasses.asdict(batching)}
    try:
        thread = ServerThread(server)
        with thread as url:
            yield Served(thread, server, url, facts)
    finally:
        service.close()


def _counts(stats: dict[str, Any]) -> dict[str, int]:
    """A session's drops (every edge, the head and frames its input replaced) and failures."""
    drops = sum(stats.get("drops", {}).values()) + stats.get("frames_replaced", 0)
    failed = sum(stage.get("errors", 0) for stage in stats.get("stages", {}).values())
    return {"drops": drops, "frames_failed": failed}


class ChurnWatch:
    """Threads and fds after one churn, read every `SoakConfig.poll_s` until each is
    back at its level before the churn (``before``: the least of `counts_probe`'s
    readings). A codec's thread alive at one instant is not a level; a thread or
    socket the churn left keeps the count above it at every reading.

    It writes into the churn's log entry: ``threads_back_s`` and ``fds_back_s``,
    seconds from the churn's start to the first reading at or below the level
    (``None``: not back, so far); and ``peak``, per count its highest reading
    before it came back, when, and what was added then (`tallies` against the
    ones before the churn).
    """

    LEVELS: ClassVar[Mapping[str, str]] = {"threads": "threads", "fds": "fds_held"}
    """Each count and the reading that is its level (fds: `fd_counts`' held ones)."""

    def __init__(self, entry: dict[str, Any], started: float) -> None:
        self.entry = entry
        self.started = started
        entry.update({f"{key}_back_s": None for key in self.LEVELS})
        entry["peak"] = {}

    @property
    def watching(self) -> bool:
        return any(self.entry[f"{key}_back_s"] is None for key in self.LEVELS)

    def poll(self) -> None:
        at = round(time.monotonic() - self.started, 2)
        counts = quick_counts()
        for key, reading in self.LEVELS.items():
            value, level = counts[reading], self.entry["before"][reading]
            if value is None or level is None or self.entry[f"{key}_back_s"] is not None:
                continue
            if value <= level:
                self.entry[f"{key}_back_s"] = at
            elif value > self.entry["peak"].get(key, {}).get("count", level):
                self.entry["peak"][key] = {"count": value, "rise": value - level, "at_s": at,
                                           "added": self._added(key)}

    def _added(self, key: str) -> dict[str, int]:
        """What there is more of now than before the churn: threads by name (Python's,
        and ``native:`` the others'), or fds by kind."""
        parts = ("fd_kinds",) if key == "fds" else ("thread_names", "native_threads")
        now, before = tallies(), self.entry["before"]
        added = {}
        for part in parts:
            prefix = "native:" if part == "native_threads" else ""
            for name, n in now[part].items():
                if n > before.get(part, {}).get(name, 0):
                    added[prefix + name] = n - before.get(part, {}).get(name, 0)
        return added


class ServeSoak:
    """One serve soak: peers join, churn and leave while the samples are taken."""

    def __init__(self, config: SoakConfig, served: Served, peers: PeerHost,
                 record: SoakRecord) -> None:
        self.config = config
        self.served = served
        self.peers = peers
        self.record = record
        self.start = time.monotonic()
        self._seen: dict[str, dict[str, int]] = {}  # per session: counts at the last sample
        self._session_of: dict[str, str] = {}  # peer -> its session on the server
        self._watch: ChurnWatch | None = None  # the last churn's, until its settle

    def run(self) -> None:
        before_first_session(self.record)
        self.warm_up()
        self.start = time.monotonic()
        for _ in range(self.config.peers):
            self.join()
        follow(schedule(self.config), self.start,
               {"sample": self.sample, "churn": self.churn, "settle": self.settle}, self.poll)
        self.finish()

    def warm_up(self) -> None:
        """The soak's peers join, stay `SoakConfig.warmup_s` and leave; once their
        sessions closed, the warm baseline (`settled_memory`)."""
        if self.config.warmup_s <= 0:
            return
        joined = [self.join() for _ in range(self.config.peers)]
        time.sleep(self.config.warmup_s)
        left = [self.leave() for _ in joined]
        self.record.warmup = {
            "peers": len(joined), "seconds": self.config.warmup_s,
            "joined_ok": all(j["ok"] for j in joined), "left_ok": all(x["ok"] for x in left),
            "not_closed": self._wait_closed(CLOSE_WAIT_S)}
        record = self.record
        record.idle_warm, record.idle_warm_freed, record.idle_warm_trimmed = \
            settled_memory(self.config)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 1)

    def join(self) -> dict[str, Any]:
        before = set(self._server(lambda: list(self.served.server.sessions)) or ())
        reply = self.peers.ask("join")
        new = set(self._server(lambda: list(self.served.server.sessions)) or ()) - before
        if len(new) == 1:
            self._session_of[reply["peer"]] = new.pop()
        self.record.joined += 1
        return reply

    def leave(self) -> dict[str, Any]:
        """The oldest peer hangs up."""
        left = self.peers.ask("leave")
        self._session_of.pop(str(left["peer"]), None)
        return left

    def churn(self) -> None:
        started = time.monotonic()
        before = counts_probe()
        left = self.leave()
        joined = self.join()
        entry = {"t_s": self.elapsed(), "left": left["peer"], "left_ok": left["ok"],
                 "joined": joined["peer"], "joined_ok": joined["ok"],
                 "join_s": joined["join_s"], "before": before}
        self.record.churns.append(entry)
        self._watch = ChurnWatch(entry, started)
        self._watch.poll()

    def poll(self) -> float | None:
        """Between events: the last churn's watch, until its counts are back."""
        if self._watch is None or not self._watch.watching:
            return None
        self._watch.poll()
        return self.config.poll_s

    def settle(self) -> None:
        """The churn's bound: its watch ends; one more reading (``after``)."""
        if self._watch is not None:
            self._watch.poll()
            self._watch = None
        self.record.churns[-1]["after"] = counts_probe()

    def sample(self) -> None:
        peers = self.peers.ask("stats")
        server = self._server(self._session_counts) or {}
        rows = [self._row(row, server) for row in peers["peers"]]
        fps = [row["fps"] for row in rows]
        sample = {"t_s": self.elapsed(), **process_probe(), "sessions_on_server": len(server),
                  "fps_min": min(fps, default=None),
                  "fps_mean": round(sum(fps) / len(fps), 2) if fps else None,
                  "latency_p50_ms": peers["latency_p50_ms"],
                  "latency_p95_ms": peers["latency_p95_ms"],
                  **self._window_counts(server), "sessions": rows}
        self.record.lost = peers["lost"]
        self.record.samples.append(sample)
        progress(self.record, sample)

    def _row(self, row: dict[str, Any], server: dict[str, dict[str, int]]) -> dict[str, Any]:
        session = self._session_of.get(row["peer"])
        drops = server.get(session, {}).get("drops") if session else None
        return {**row, "session": session, "session_drops": drops}

    def _session_counts(self) -> dict[str, dict[str, int]]:
        """On the server's loop: `_counts` of every session."""
        return {sid: _counts(s.stats()) for sid, s in self.served.server.sessions.items()}

    def _window_counts(self, server: dict[str, dict[str, int]]) -> dict[str, int]:
        """Drops and failed frames since the last sample, over the sessions open now."""
        zero = {"drops": 0, "frames_failed": 0}
        window = dict(zero)
        for sid, counts in server.items():
            for key in window:
                window[key] += counts[key] - self._seen.get(sid, zero)[key]
        self._seen = server
        return window

    def _server(self, fn: Callable[[], Any]) -> Any:
        """``fn`` on the server's loop; ``None`` (and a fault) when the server cannot answer."""
        try:
            return self.served.thread.call(fn)
        except Exception as exc:
            self.record.faults.append(f"{self.elapsed()} s: {type(exc).__name__}: {exc}")
            return None

    def finish(self) -> None:
        final = self.peers.ask("stop", timeout_s=LEAVE_TIMEOUT_S * (self.config.peers + 1))
        self.record.lost, self.record.minutes = final["lost"], final["minutes"]
        self.record.left = final["left"]
        self.record.not_closed = self._wait_closed(CLOSE_WAIT_S)
        after_release(self.record, self.config)

    def _wait_closed(self, limit_s: float) -> int:
        """Sessions still open on the server once all closed, or after ``limit_s``."""
        deadline = time.monotonic() + limit_s
        while (left := self._server(lambda: len(self.served.server.sessions))) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        return int(left or 0)


def before_first_session(record: SoakRecord) -> None:
    """RSS before any session, then after a trim (the cold baseline of `after_release`'s)."""
    record.idle = memory_probe()
    record.idle_freed = release_freed_memory()
    record.idle_trimmed = memory_probe()


def after_release(record: SoakRecord, config: SoakConfig) -> None:
    """RSS once the sessions are gone and things settled, then after a trim."""
    record.after_close, record.after_freed, record.after_trim = settled_memory(config)


def settled_memory(config: SoakConfig) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """`SoakConfig.close_settle_s` after sessions closed: `memory_probe`, then what a
    collection and ``malloc_trim`` freed (`release_freed_memory`) and the probe after."""
    time.sleep(config.close_settle_s)
    settled = memory_probe()
    freed = release_freed_memory()
    return settled, freed, memory_probe()


def run_serve_soak(config: SoakConfig) -> SoakRecord:
    record = SoakRecord(config)
    with ErrorLog() as errors, named_os_threads():
        with served() as server, PeerHost(server.url) as peers:
            record.facts = {**server.facts, "camera": CAMERA, "peers": config.peers,
                            "churn_s": config.churn_s}
            ServeSoak(config, server, peers, record).run()
        record.error_count, record.errors = errors.count, list(errors.first)
    return record


CAMERA = "synthetic held-out person, 640x480 at 30 fps, frame index stamped"


# ---- run -----------------------------------------------------------------------------
RUN_TAIL_S = 1.0
"""The run lasts this much past the last sample, so that sample sees it running."""


@dataclass
class SinkCount:
    """Frames a `CountingCamera` was sent."""

    frames: int = 0


class CountingCamera:
    """A pyvirtualcam backend that counts the frames it is sent and keeps none."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: Any,
                 device: str | None, count: SinkCount, **_: Any) -> None:
        self._device = device or "soak-counter0"
        self.count = count

    def send(self, frame: Any) -> None:
        self.count.frames += 1

    def close(self) -> None:
        """Nothing to release."""

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> None:
        return None


@contextlib.contextmanager
def counting_backend(name: str = COUNTING_BACKEND) -> Iterator[SinkCount]:
    """Register a `CountingCamera` backend as ``name`` while inside; yield its count."""
    try:
        import pyvirtualcam
    except ImportError as exc:
        from pipeline.errors import UserError

        raise UserError("the soak's run mode sends to a virtual camera: "
                        "pip install 'vicocam[virtualcam]'") from exc
    count = SinkCount()
    pyvirtualcam.register_backend(name, functools.partial(CountingCamera, count=count))
    try:
        yield count
    finally:
        pyvirtualcam.camera.BACKENDS.pop(name, None)


def run_args(config: SoakConfig) -> list[str]:
    """``vicocam run``'s arguments for the soak: its defaults into the chosen sink."""
    return ["run", "--sink", config.run_sink, "--no-keys", "--no-status",
            "--seconds", f"{config.seconds + RUN_TAIL_S:g}"]


def build_run(config: SoakConfig) -> Any:
    """The `AvatarRun` ``vicocam run`` builds; a virtual camera gets the counting backend."""
    from pipeline.app.avatar_run import build_avatar_run, sink_options
    from pipeline.app.cli import build_parser
    from pipeline.app.commands.run import avatar_config
    from pipeline.app.model_options import open_model
    from stages.endpoints import open_sink

    run = avatar_config(build_parser().parse_args(run_args(config)))
    options = dataclasses.replace(sink_options(run), virtualcam_backend=COUNTING_BACKEND)
    return build_avatar_run(run, load=open_model, sink=open_sink(config.run_sink, options))


class RunSampler:
    """Samples of a running pipeline, each over the window since the last."""

    def __init__(self, pipeline: Any, sink: SinkCount, record: SoakRecord) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.record = record
        self.start_ns = time.monotonic_ns()
        self._since_ns = self.start_ns
        self._latencies_seen = 0
        self._last = {"frames": 0, "drops": 0, "frames_failed": 0, "sent": 0}

    def sample(self) -> None:
        now = time.monotonic_ns()
        seconds = max((now - self._since_ns) / 1e9, 1e-9)
        self._since_ns = now
        delta = self._deltas()
        latency = self._new_latencies()
        row = {"peer": "run", "frames": delta["frames"],
               "fps": round(delta["frames"] / seconds, 2), **latency}
        sample = {"t_s": round((now - self.start_ns) / 1e9, 1), **process_probe(),
                  "fps_min": row["fps"], "fps_mean": row["fps"], **latency,
                  "drops": delta["drops"], "frames_failed": delta["frames_failed"],
                  "sink_fps": round(delta["sent"] / seconds, 2), "sessions": [row]}
        self.record.samples.append(sample)
        progress(self.record, sample)

    def _deltas(self) -> dict[str, int]:
        m = self.pipeline.metrics
        now = {"frames": m.frames_out, "drops": m.frames_dropped,
               "frames_failed": m.frames_failed, "sent": self.sink.frames}
        delta = {key: now[key] - self._last[key] for key in now}
        self._last = now
        return delta

    def _new_latencies(self) -> dict[str, float | None]:
        latencies = self.pipeline.metrics.latencies
        window = [ms for _, ms in latencies[self._latencies_seen:]]
        self._latencies_seen = len(latencies)
        return latency_summary(window)


async def sampled_run(pipeline: Any, config: SoakConfig, sampler: RunSampler) -> Any:
    """Run ``pipeline``, sampling on the schedule; its report (or its exception)."""
    task = asyncio.create_task(pipeline.run())
    start = time.monotonic()
    for at, _ in schedule(config):
        await asyncio.wait({task}, timeout=max(0.0, start + at - time.monotonic()))
        if task.done():
            break
        sampler.sample()
    return await task


def run_run_soak(config: SoakConfig) -> SoakRecord:
    record = SoakRecord(config)
    with ErrorLog() as errors, named_os_threads(), counting_backend() as sink:
        run = build_run(config)
        record.facts = {"run": "vicocam " + " ".join(run_args(config)),
                        "model": run.bundle.label, "trained": run.bundle.trained,
                        "driver": "synthetic held-out person at 30 fps",
                        "sink": config.run_sink}
        try:
            before_first_session(record)
            sampler = RunSampler(run.pipeline, sink, record)
            _finish_run(record, _run_through(run.pipeline, config, sampler, record))
            after_release(record, config)
        finally:
            run.bundle.close()
        record.error_count, record.errors = errors.count, list(errors.first)
    return record


def _finish_run(record: SoakRecord, report: Any | None) -> None:
    """The run's minutes, and the run as the one session: lost unless it ran its time."""
    minutes = MinuteBook()
    for now_ns, ms in [] if report is None else report.metrics.latencies:
        minutes.add(now_ns, ms)
    record.minutes = minutes.summary()
    reason = "it failed" if report is None else report.reason
    record.joined, record.left = 1, int(reason == "duration")
    if reason != "duration":
        record.lost = [{"peer": "run", "why": f"the run ended early: {reason}"}]


def _run_through(pipeline: Any, config: SoakConfig, sampler: RunSampler,
                 record: SoakRecord) -> Any | None:
    """`sampled_run` to its end; a failure is written down as a fault (``None``)."""
    try:
        return asyncio.run(sampled_run(pipeline, config, sampler))
    except Exception as exc:  # a failed run is the finding: keep it in the JSON
        record.faults.append(f"the run failed: {type(exc).__name__}: {exc}")
        return None


def run_soak(config: SoakConfig, json_path: Path | None = None) -> dict[str, Any]:
    """One soak in ``config.mode``; its figures (a chart beside ``json_path`` when given)."""
    from benchmarks.soak_figures import plot_soak, soak_figures
    from pipeline.memory import tune_allocator

    allocator = tune_allocator()  # as `vicocam serve` and `vicocam run` do
    record = run_serve_soak(config) if config.mode == "serve" else run_run_soak(config)
    figures = {**soak_figures(record), "allocator": allocator or "glibc defaults"}
    if json_path is not None:
        figures["chart"] = plot_soak(record, json_path.with_suffix(".png")).name
    return figures
