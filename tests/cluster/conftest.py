"""A local Ray cluster for the cluster tests: started once per test session, on loopback only.

Ray tests run only where nothing can leave the machine: inside a network
namespace with nothing but loopback (``scripts/test.sh`` runs the tests so
as root). Elsewhere, or without ``ray[serve]``, they skip with the reason;
``VICOCAM_RAY_TESTS=1`` runs them anyway (Ray then binds 127.0.0.1 too).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

RAY_CPUS = 4
"""Logical CPUs of the test cluster: replicas reserve half a CPU each, whatever the cores."""


def loopback_only() -> bool:
    """Whether this process sees no network interface but loopback."""
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


@pytest.fixture(scope="session")
def ray_usable() -> None:
    """Skips, with the reason, where Ray must not start (see the module docstring)."""
    pytest.importorskip("ray.serve", reason="ray[serve] is not installed "
                                            "(pip install 'vicocam[cluster]')")
    pytest.importorskip("aiortc")
    if not loopback_only() and os.environ.get("VICOCAM_RAY_TESTS") != "1":
        pytest.skip("Ray tests run inside a loopback-only network namespace (scripts/test.sh "
                    "does so as root; or: unshare -n -- sh -c 'ip link set lo up && exec "
                    "\"$@\"' sh .venv/bin/python -m pytest tests/cluster); "
                    "VICOCAM_RAY_TESTS=1 runs them here")


@pytest.fixture(scope="session")
def ray_cluster(ray_usable: None) -> Iterator[None]:
    """Ray and Ray Serve in this process, for the whole test session."""
    from pipeline.app.cluster.config import RayConfig
    from pipeline.app.cluster.runtime import ray_runtime

    with ray_runtime(RayConfig(node_ip="127.0.0.1", num_cpus=RAY_CPUS, log_to_driver=False)):
        yield
