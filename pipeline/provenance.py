"""Where a figure was measured: the machine, the package versions and the load.

Benchmarks and the training study record this beside every figure they write.

On a virtual machine the load average does not tell the whole story: the
hypervisor may give part of the cores' time to other guests (``steal`` in
``/proc/stat``), and a latency measured then is not comparable with one
measured without. `cpu_times` and `cpu_shares` record how the machine's time
was spent while a benchmark ran: busy here, idle, or stolen.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """A short description of where a figure was measured."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }
    with contextlib.suppress(OSError):
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    info["versions"] = package_versions()
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
    return info


VERSIONED = ("vicocam", "torch", "onnxruntime", "numpy", "opencv-python", "av", "aiortc")


def package_versions() -> dict[str, str | None]:
    """Installed versions of what the figures depend on (``None``: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The machine's cumulative CPU time (all cores, in clock ticks) by what it went to."""

    busy: int
    """User, nice, system, interrupts: this machine's own work."""
    idle: int
    """Idle and waiting for I/O."""
    steal: int
    """Taken by the hypervisor for other guests while this machine had work."""


def parse_cpu_times(stat: str) -> CpuTimes:
    """The aggregate ``cpu`` line of a ``/proc/stat`` text."""
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            # user nice system idle iowait irq softirq steal [guest guest_nice: inside user]
            ticks = [int(v) for v in fields[1:9]] + [0] * max(0, 9 - len(fields))
            user, nice, system, idle, iowait, irq, softirq, steal = ticks[:8]
            return CpuTimes(busy=user + nice + system + irq + softirq, idle=idle + iowait,
                            steal=steal)
    raise ValueError("no aggregate 'cpu' line in the /proc/stat text")


def cpu_times() -> CpuTimes | None:
    """The machine's CPU times now; ``None`` where there is no ``/proc/stat``."""
    try:
        return parse_cpu_times(Path("/proc/stat").read_text())
    except (OSError, ValueError):
        return None


def cpu_shares(before: CpuTimes, after: CpuTimes) -> dict[str, float]:
    """How the machine's time between two readings was spent, as fractions of it:
    ``cpu_busy_share``, ``cpu_idle_share``, ``cpu_steal_share`` (empty if no time passed)."""
    busy, idle = after.busy - before.busy, after.idle - before.idle
    steal = after.steal - before.steal
    total = busy + idle + steal
    if total <= 0:
        return {}
    return {"cpu_busy_share": round(busy / total, 4), "cpu_idle_share": round(idle / total, 4),
            "cpu_steal_share": round(steal / total, 4)}


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


__all__ = ["VERSIONED", "CpuTimes", "cpu_shares", "cpu_times", "machine_info",
           "package_versions", "parse_cpu_times"]
