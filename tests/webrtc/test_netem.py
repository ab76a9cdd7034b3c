"""Kernel netem: the tc commands for a link's conditions, run through a fake ``tc``."""

from __future__ import annotations

import os
import stat
import time

import pytest

from stages.webrtc.impairment import LinkConditions, parse_link
from stages.webrtc.netem import KernelLink, netem_arguments, netem_available, tc_command


def test_conditions_become_netem_parameters():
    conditions = parse_link("loss=2%,delay=40ms,jitter=10ms,rate=1mbit")
    assert netem_arguments(conditions) == [
        "netem", "limit", "1000", "delay", "40ms", "10ms", "distribution", "uniform",
        "loss", "2%", "rate", "1000kbit"]
    assert netem_arguments(LinkConditions()) == ["netem", "limit", "1000"]
    assert netem_arguments(LinkConditions(), blackout=True)[-2:] == ["loss", "100%"]
    assert tc_command("change", "lo", LinkConditions())[:6] == [
        "tc", "qdisc", "change", "dev", "lo", "root"]


@pytest.fixture
def fake_tc(tmp_path, monkeypatch):
    """A ``tc`` on PATH that logs its arguments and fails when FAKE_TC_FAIL is set."""
    log = tmp_path / "tc.log"
    script = tmp_path / "tc"
    script.write_text('#!/bin/sh\necho "$@" >> "$FAKE_TC_LOG"\n'
                      'if [ -n "$FAKE_TC_FAIL" ]; then echo "$FAKE_TC_FAIL" >&2; exit 2; fi\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TC_LOG", str(log))
    return log


def test_a_kernel_without_netem_is_reported_with_tcs_words(fake_tc, monkeypatch):
    monkeypatch.setenv("FAKE_TC_FAIL", 'Specified qdisc kind is unknown.')
    problem = netem_available()
    assert problem is not None and "qdisc kind is unknown" in problem
    with pytest.raises(RuntimeError, match="cannot put netem on lo"):
        KernelLink(LinkConditions(loss=0.02)).__enter__()


def test_netem_is_tried_and_taken_off_again(fake_tc):
    assert netem_available() is None
    assert fake_tc.read_text().splitlines() == [
        "qdisc add dev lo root netem limit 1000", "qdisc del dev lo root"]


def test_a_blackout_cuts_the_link_and_restores_it_then_the_qdisc_goes(fake_tc):
    with KernelLink(parse_link("loss=2%")) as link:
        begin, end = link.black_out(0.1)
        deadline = time.monotonic() + 10
        while len(fake_tc.read_text().splitlines()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert end - begin == pytest.approx(0.1)
    assert fake_tc.read_text().splitlines() == [
        "qdisc add dev lo root netem limit 1000 loss 2%",
        "qdisc change dev lo root netem limit 1000 loss 100%",
        "qdisc change dev lo root netem limit 1000 loss 2%",
        "qdisc del dev lo root"]
