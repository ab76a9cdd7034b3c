"""The same bad network from the kernel, where it has ``netem``: ``tc qdisc ... netem``.

`stages.webrtc.impairment` shapes a peer's packets in user space because the
kernels of the machines this project is built on have no ``netem`` queueing
discipline. Where the kernel has one, `KernelLink` puts the same
`LinkConditions` on a network device instead: ``delay D J``, ``loss P%``,
``rate R``, and a blackout as ``loss 100%`` for its length. Every packet
leaving the device passes it once; on ``lo`` both directions of a loopback
call leave through it, so each packet is impaired once, as with the
user-space link.

It changes the device for every program using it and needs root
(``CAP_NET_ADMIN``): use it inside a network namespace of its own
(``unshare -n``, as the tests and benchmarks run here). `netem_available`
tries it and says why not.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from stages.webrtc.impairment import LinkConditions

QUEUE_PACKETS = 1000
"""netem's own default queue limit, in packets."""


def netem_arguments(conditions: LinkConditions, *, blackout: bool = False) -> list[str]:
    """``tc qdisc`` netem parameters for ``conditions`` (``loss 100%`` when ``blackout``)."""
    args = ["netem", "limit", str(QUEUE_PACKETS)]
    if conditions.delay_ms:
        args += ["delay", f"{conditions.delay_ms:g}ms"]
        if conditions.jitter_ms:
            args += [f"{conditions.jitter_ms:g}ms", "distribution", "uniform"]
    loss = 100.0 if blackout else conditions.loss * 100
    if loss:
        args += ["loss", f"{loss:g}%"]
    if conditions.rate_kbps is not None:
        args += ["rate", f"{conditions.rate_kbps:g}kbit"]
    return args


def tc_command(action: str, device: str, conditions: LinkConditions, *,
               blackout: bool = False) -> list[str]:
    """``tc qdisc {add|change} dev DEVICE root netem ...``."""
    return ["tc", "qdisc", action, "dev", device, "root",
            *netem_arguments(conditions, blackout=blackout)]


def _run(command: Sequence[str]) -> str | None:
    """Run ``command``; ``None`` when it worked, else what went wrong."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()


def netem_available(device: str = "lo") -> str | None:
    """``None`` if netem can be put on ``device`` here, else why not."""
    if shutil.which("tc") is None:
        return "no 'tc' command (Debian: apt install iproute2)"
    problem = _run(tc_command("add", device, LinkConditions()))
    if problem is not None:
        return f"tc netem on {device}: {problem}"
    _run(["tc", "qdisc", "del", "dev", device, "root"])
    return None


class KernelLink:
    """``conditions`` on ``device`` while entered; `black_out` cuts it for a while.

    Blackouts in ``conditions`` are counted from entering, like the
    user-space link's; `blackouts` lists every one on the monotonic clock.
    """

    def __init__(self, conditions: LinkConditions, device: str = "lo") -> None:
        self.conditions = conditions
        self.device = device
        self.blackouts: list[tuple[float, float]] = []
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def __enter__(self) -> KernelLink:
        problem = _run(tc_command("add", self.device, self.conditions))
        if problem is not None:
            raise RuntimeError(f"cannot put netem on {self.device}: {problem}")
        for start, length in self.conditions.blackouts:
            self._later(start, functools.partial(self.black_out, length))
        return self

    def black_out(self, length_s: float) -> tuple[float, float]:
        """Lose every packet from now for ``length_s``; returns the monotonic window."""
        with self._lock:
            _run(tc_command("change", self.device, self.conditions, blackout=True))
            now = time.monotonic()
            self.blackouts.append((now, now + length_s))
        self._later(length_s, self._restore)
        return self.blackouts[-1]

    def _restore(self) -> None:
        with self._lock:
            _run(tc_command("change", self.device, self.conditions))

    def _later(self, delay_s: float, action: Callable[[], object]) -> None:
        timer = threading.Timer(delay_s, action)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def __exit__(self, *exc: object) -> None:
        for timer in self._timers:
            timer.cancel()
        _run(["tc", "qdisc", "del", "dev", self.device, "root"])
