"""The Host names `vicocam serve` answers to (DNS-rebinding protection)."""

from __future__ import annotations

import pytest

from stages.webrtc.security import HostAllowlist, host_allowlist, host_name


@pytest.mark.parametrize(("value", "name"), [
    ("localhost", "localhost"),
    ("LocalHost:8080", "localhost"),
    ("127.0.0.1:80", "127.0.0.1"),
    ("[::1]", "::1"),
    ("[::1]:8080", "::1"),
    ("attacker.example:8080", "attacker.example"),
    ("::1", None),  # an IPv6 literal needs its brackets in a Host header
    ("[::1", None),
    ("localhost:http", None),
    ("a b", None),
    ("user@localhost", None),
    ("", None),
])
def test_host_name_drops_the_port_and_refuses_malformed_values(value, name):
    assert host_name(value) == name


def test_the_allowlist_takes_loopback_names_and_the_given_ones():
    allowlist = HostAllowlist(["gpu-box:8080", "Vicocam.Test"])
    assert allowlist.names == {"gpu-box", "vicocam.test"}
    for host in ("localhost:1", "127.9.9.9", "[::1]:8080", "gpu-box", "VICOCAM.TEST:80"):
        assert allowlist.allows(host), host
    for foreign in (None, "", "attacker.example", "gpu-box.attacker.example", "0.0.0.0:8080"):
        assert not allowlist.allows(foreign), foreign


def test_only_loopback_binds_check_the_host_unless_names_are_given():
    for bind in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert host_allowlist(bind, []) is not None, bind
    assert host_allowlist("0.0.0.0", []) is None
    assert host_allowlist("192.168.1.5", ()) is None
    given = host_allowlist("0.0.0.0", ["gpu-box"])
    assert given is not None and given.names == {"gpu-box"}
