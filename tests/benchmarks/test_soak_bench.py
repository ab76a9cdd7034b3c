"""``vicocam bench soak``: its schedule, its targets, its chart, and short runs of both modes."""

from __future__ import annotations

import gc
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.chart import MARGIN, PANEL
from benchmarks.soak import (
    SoakConfig,
    SoakRecord,
    collect_cycles,
    fd_counts,
    fd_kinds,
    follow,
    named_os_threads,
    native_threads,
    schedule,
    ticks,
)
from benchmarks.soak_figures import plot_soak, soak_figures
from benchmarks.soak_peers import MinuteBook, StampedCamera
from stages.stamp import read_stamp

TARGETS = {"rss_growth_after_minute_2_pct", "threads_back_after_each_churn",
           "fds_back_after_each_churn", "latency_p50_last_vs_second_minute", "crashes",
           "sessions_lost", "sessions_open_after_all_left", "rss_after_close_minus_idle_mb"}


def test_ticks_reach_the_end_exactly():
    assert ticks(45, 10) == [10, 20, 30, 40, 45]
    assert ticks(40, 10) == [10, 20, 30, 40]


def test_churns_come_every_20_s_after_the_sample_due_with_them():
    events = schedule(SoakConfig(seconds=60, settle_s=18))
    churns = [t for t, kind in events if kind == "churn"]
    assert churns == [20, 40]  # 60 would settle past the end
    assert [t for t, kind in events if kind == "settle"] == [38, 58]
    assert events.index((20, "sample")) < events.index((20, "churn"))
    assert [t for t, kind in events if kind == "sample"] == [10, 20, 30, 40, 50, 60]
    assert all(kind == "sample" for _, kind in schedule(SoakConfig(seconds=60, mode="run")))


def test_a_bad_config_is_refused():
    with pytest.raises(ValueError, match="mode"):
        SoakConfig(mode="browser")
    with pytest.raises(ValueError, match="settle_s"):
        SoakConfig(churn_s=10, settle_s=12)
    with pytest.raises(ValueError, match="warmup_s"):
        SoakConfig(warmup_s=-1)


def test_between_events_the_watch_runs_until_it_has_nothing_to_do():
    calls: list[str] = []
    polls = iter([0.01, 0.01, None])

    def between() -> float | None:
        calls.append("poll")
        return next(polls, None)

    follow([(0.2, "sample"), (0.25, "churn")], time.monotonic(),
           {"sample": lambda: calls.append("sample"), "churn": lambda: calls.append("churn")},
           between)
    assert calls[:3] == ["poll"] * 3 and calls[-1] == "churn"
    assert [call for call in calls if call != "poll"] == ["sample", "churn"]
    assert calls.count("poll") <= 4  # after None it waits for each event, asking once


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_native_threads_carry_the_name_of_the_thread_that_started_them():
    from av import VideoFrame
    from av.video.reformatter import VideoReformatter

    held: list[VideoReformatter] = []
    ready, done = threading.Event(), threading.Event()

    def scale() -> None:  # swscale starts its slice threads in this thread, named "probe_1"
        reformatter = VideoReformatter()
        frame = VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        reformatter.reformat(frame, format="yuv420p", threads=2)
        held.append(reformatter)
        ready.set()
        done.wait(10)

    with named_os_threads():
        thread = threading.Thread(target=scale, name="vicocam-probe_1")
        thread.start()
        assert ready.wait(10)
        natives = native_threads()
        done.set()
        thread.join()
    assert natives.get("probe_", 0) >= 1  # its slice workers (one may run in the caller)
    assert "probe_" not in {n for n in natives if n.startswith("vicocam")}


@pytest.mark.skipif(not Path("/proc/self/net/tcp").is_file(), reason="reads /proc (Linux)")
def test_a_connection_a_client_holds_open_is_not_held_by_the_server():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        kinds, counts = fd_kinds(), fd_counts()
        assert kinds.get("client_connection") == 1
        assert counts["fds"] is not None and counts["fds_held"] == counts["fds"] - 1
        client.close()  # now only this side holds it (CLOSE_WAIT): held, however briefly
        time.sleep(0.05)
        assert "client_connection" not in fd_kinds()
        accepted.close()


CHURN_SCENARIO = """
import json, threading, time
from benchmarks.soak import ChurnWatch, quick_counts
before = quick_counts()
entry = {"before": {**before, "thread_names": {}, "native_threads": {}}}
release = threading.Event()
extra = threading.Thread(target=release.wait, name="vicocam-left_0")
extra.start()
watch = ChurnWatch(entry, time.monotonic())
watch.poll()
held = {"watching": watch.watching, "threads_back_s": entry["threads_back_s"]}
release.set()
extra.join()  # the OS thread may outlive the join by a moment: the watch polls until back
deadline = time.monotonic() + 10
while watch.watching and entry["threads_back_s"] is None and time.monotonic() < deadline:
    watch.poll()
    time.sleep(0.01)
print(json.dumps({"held": held, "entry": entry}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_a_churn_watch_waits_for_the_count_to_come_back():
    # In a process of its own: threads other tests left behind start and end at will
    # in this one, and the count the watch waits for is the whole process's. After the
    # join the thread's OS task can linger a moment (under load, past one poll), as the
    # watch of a real churn expects: it polls until the count is back.
    done = subprocess.run([sys.executable, "-c", CHURN_SCENARIO], capture_output=True,
                          text=True, timeout=60, check=True)
    seen = json.loads(done.stdout)
    held, entry = seen["held"], seen["entry"]
    assert held == {"watching": True, "threads_back_s": None}
    assert entry["peak"]["threads"]["rise"] >= 1
    assert entry["peak"]["threads"]["added"].get("vicocam-left_") == 1
    assert entry["threads_back_s"] is not None and entry["threads_back_s"] >= 0


def test_the_stamped_camera_remembers_recent_frames_and_ends_when_asked():
    clip = [np.full((120, 160, 3), 90, np.uint8)]
    camera = StampedCamera(clip)
    frames = [camera.read() for _ in range(3)]
    assert [read_stamp(f.image) for f in frames if f] == [0, 1, 2]
    assert clip[0][0, 0, 0] == 90  # the clip itself is never stamped
    assert camera.captured_ns(1) is not None and camera.captured_ns(3) is None
    camera.end()
    assert camera.read() is None


def test_minutes_are_counted_from_the_first_frame_back():
    book = MinuteBook()
    for second, ms in ((100, 20.0), (130, 40.0), (170, 60.0), (219, 80.0)):
        book.add(second * 1_000_000_000, ms)
    minutes = book.summary()
    assert [m["minute"] for m in minutes] == [0, 1]
    assert minutes[0]["samples"] == 2 and minutes[1]["latency_p50_ms"] == 70.0


class _Node:
    other: _Node | None = None


class _FakeSession(_Node):
    """Named as a resource holder is."""


def test_a_full_collection_names_the_classes_it_freed():
    gc.collect()  # earlier tests' garbage is not this test's
    a, b = _Node(), _FakeSession()
    a.other, b.other = b, a
    del a, b
    freed = collect_cycles()
    assert freed["cycle_objects"] >= 2
    assert freed["cycle_types"].get(f"{__name__}._Node", 0) >= 1
    assert not any(name.startswith("builtins.") for name in freed["cycle_types"])
    assert freed["cycle_owners"].get(f"{__name__}._FakeSession") == 1


def _sample(t_s: float, rss: float, **more: float) -> dict:
    return {"t_s": t_s, "rss_mb": rss, "threads": 40, "python_threads": 30, "fds": 20,
            "fps_min": 29.0, "fps_mean": 29.5, "latency_p50_ms": 40.0, "latency_p95_ms": 60.0,
            "drops": 2, "frames_failed": 0, "sessions": [], **more}


def _churn(t_s: float, before: tuple[int, int], after: tuple[int, int],
           back: tuple[float | None, float | None], peak: int = 0) -> dict:
    """A churn log entry: threads and held fds before and after, seconds to come back."""
    def counts(threads: int, fds: int) -> dict:
        return {"threads": threads, "fds": fds + 1, "fds_held": fds}
    return {"t_s": t_s, "before": counts(*before), "after": counts(*after),
            "threads_back_s": back[0], "fds_back_s": back[1],
            "peak": {"threads": {"count": before[0] + peak, "rise": peak, "at_s": 2.0,
                                 "added": {"native:source_": peak}}} if peak else {}}


def _record() -> SoakRecord:
    record = SoakRecord(SoakConfig(seconds=240))
    record.samples = [_sample(t, 500 + t / 10) for t in range(10, 250, 10)]
    record.churns = [_churn(20.5, (40, 20), (40, 21), (3.2, None), peak=4),
                     _churn(40.5, (41, 20), (40, 20), (2.5, 1.8), peak=2)]
    record.minutes = [{"minute": m, "latency_p50_ms": 40.0 + m} for m in range(4)]
    record.idle = record.idle_trimmed = {"rss_mb": 400.0, "rss_anon_mb": 300.0}
    record.after_close = {"rss_mb": 470.0}
    record.after_trim = {"rss_mb": 430.0, "rss_anon_mb": 320.0}
    record.lost = [{"peer": "peer2", "why": "the call ended (the server closed it)"}]
    record.joined, record.left = 13, 12
    return record


def test_the_targets_are_numbers_with_their_verdicts():
    figures = soak_figures(_record())
    targets = figures["targets"]
    assert set(targets) == TARGETS
    growth = targets["rss_growth_after_minute_2_pct"]
    # levels: the medians of 512..517 MB (2 to 3 min) and of 518..524 MB (the last minute)
    assert (growth["minute_2_mb"], growth["end_mb"]) == (514.5, 521.0)
    assert growth["value"] == pytest.approx(100 * 6.5 / 514.5, abs=0.01) and growth["met"] is True
    threads = targets["threads_back_after_each_churn"]
    assert (threads["value"], threads["met"], threads["churns"]) == (0, True, 2)
    assert (threads["slowest_return_s"], threads["returned_within_s"]) == (3.2, 18.0)
    assert threads["largest_rise"] == 0  # the after reading; the peak was transient
    assert threads["largest_peak_rise"] == 4
    assert threads["largest_peak_added"] == {"native:source_": 4}
    assert targets["fds_back_after_each_churn"] == {**targets["fds_back_after_each_churn"],
                                                    "value": 1, "met": False, "largest_rise": 1,
                                                    "not_back_at_s": [20.5], "first_before": 20,
                                                    "last_after": 20}
    ratio = targets["latency_p50_last_vs_second_minute"]
    assert ratio["value"] == pytest.approx(43 / 41, abs=1e-3) and ratio["last_minute"] == 3
    assert targets["sessions_lost"]["value"] == 1 and targets["sessions_lost"]["met"] is False
    held = targets["rss_after_close_minus_idle_mb"]
    assert (held["value"], held["met"], held["held_after_trim_mb"]) == (70.0, False, 30.0)
    assert held["held_after_trim_anon_mb"] == 20.0
    assert (held["met_by"], held["warm"], held["one_time_loads_mb"]) == (None, None, None)
    assert figures["all_targets_met"] is False


def _warm(record: SoakRecord, warm: float, warm_trimmed: float) -> SoakRecord:
    record.idle_warm = {"rss_mb": warm, "rss_anon_mb": warm - 100}
    record.idle_warm_trimmed = {"rss_mb": warm_trimmed, "rss_anon_mb": warm_trimmed - 100}
    return record


def test_memory_within_the_limit_of_idle_needs_no_explaining():
    record = _warm(_record(), 430.0, 420.0)
    record.after_close = {"rss_mb": 440.0}
    held = soak_figures(record)["targets"]["rss_after_close_minus_idle_mb"]
    assert (held["value"], held["met"], held["met_by"]) == (40.0, True, "idle")
    assert "explained" not in held


def test_memory_held_beyond_idle_is_met_when_the_warm_baseline_explains_it():
    record = _warm(_record(), 520.0, 410.0)  # the first sessions' one-time loads: +10 MB
    record.after_close, record.after_trim = {"rss_mb": 600.0}, {"rss_mb": 440.0}
    held = soak_figures(record)["targets"]["rss_after_close_minus_idle_mb"]
    assert (held["value"], held["met"], held["met_by"]) == (200.0, True, "warm")
    assert held["one_time_loads_mb"] == 10.0
    warm = held["warm"]
    assert (warm["value"], warm["met"], warm["after_close_minus_warm_mb"]) == (30.0, True, 80.0)
    assert warm["allocator_free_after_close_mb"] == 160.0
    assert "one-time loads" in held["explained"] and "30.0 MB is held" in held["explained"]


def test_memory_held_beyond_the_warm_baseline_too_is_missed():
    record = _warm(_record(), 520.0, 410.0)
    record.after_close, record.after_trim = {"rss_mb": 600.0}, {"rss_mb": 470.0}
    held = soak_figures(record)["targets"]["rss_after_close_minus_idle_mb"]
    assert (held["met"], held["met_by"], held["warm"]["value"]) == (False, None, 60.0)
    assert "explained" not in held


def test_a_run_too_short_for_a_target_leaves_it_open():
    record = _record()
    record.config = SoakConfig(seconds=50)
    record.samples = record.samples[:5]
    record.minutes = record.minutes[:1]
    targets = soak_figures(record)["targets"]
    assert targets["rss_growth_after_minute_2_pct"]["met"] is None
    assert targets["latency_p50_last_vs_second_minute"]["met"] is None


def test_the_chart_has_six_panels_in_two_rows(tmp_path: Path):
    path = plot_soak(_record(), tmp_path / "soak.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[:2] == (2 * PANEL[1], 3 * PANEL[0])
    x = PANEL[0] + MARGIN[0] + 2  # inside the second panel of the first row: threads
    assert len({tuple(px) for px in image[MARGIN[1]:PANEL[1] - MARGIN[3], x]}) > 2


def test_the_virtual_camera_backend_counts_frames():
    pyvirtualcam = pytest.importorskip("pyvirtualcam")
    from benchmarks.soak import COUNTING_BACKEND, counting_backend

    with counting_backend() as count, \
            pyvirtualcam.Camera(width=8, height=4, fps=30, backend=COUNTING_BACKEND) as camera:
        camera.send(np.zeros((4, 8, 3), np.uint8))
        camera.send(np.zeros((4, 8, 3), np.uint8))
    assert count.frames == 2
    assert COUNTING_BACKEND not in pyvirtualcam.camera.BACKENDS


def _bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, "-m", "pipeline.app", "bench", "soak", *args,
                           "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    figures: dict = json.loads(out.read_text())
    assert figures["benchmark"] == "soak" and "loadavg_1m" in figures["machine"]
    assert set(figures["targets"]) == TARGETS
    assert all({"value", "limit", "met"} <= set(t) for t in figures["targets"].values())
    assert (tmp_path / figures["chart"]).is_file()
    for sample in figures["samples"]:
        assert sample["rss_mb"] > 0 and sample["threads"] > 0 and sample["fds"] > 0
    return figures


def test_a_short_serve_soak_churns_its_peers(tmp_path: Path):
    figures = _bench(tmp_path, "--seconds", "45")
    assert figures["mode"] == "serve" and figures["max_sessions"] == 4
    assert figures["batching"] is not None  # serve's default: batched
    assert len(figures["samples"]) == 5  # at 10, 20, 30, 40 and 45 s
    assert figures["churns"] == 1
    churn = figures["churn_log"][0]
    assert churn["left"] == "peer4" and churn["joined"] == "peer7"  # 1-3: the warm-up
    assert churn["left_ok"] and churn["joined_ok"]
    assert {"threads", "fds", "fds_held"} <= set(churn["before"]) & set(churn["after"])
    assert {"threads_back_s", "fds_back_s", "peak"} <= set(churn)
    assert "native_threads" in churn["before"] and "thread_names" in churn["before"]
    assert figures["warmup"]["joined_ok"] and figures["warmup"]["not_closed"] == 0
    assert figures["idle_warm"]["rss_mb"] > 0 and figures["idle_warm_trimmed"]["rss_mb"] > 0
    assert figures["peers_joined"] == figures["peers_left"] == 7
    assert figures["lost"] == [] and figures["targets"]["sessions_lost"]["met"] is True
    assert figures["targets"]["sessions_open_after_all_left"]["value"] == 0
    last = figures["samples"][-1]
    assert [s["peer"] for s in last["sessions"]] == ["peer5", "peer6", "peer7"]
    assert all(s["frames"] > 0 and s["session"] for s in last["sessions"])
    assert figures["idle"]["rss_mb"] > 0 and figures["after_close"]["rss_mb"] > 0
    held = figures["targets"]["rss_after_close_minus_idle_mb"]
    assert held["warm"] is not None and held["met_by"] in ("idle", "warm", None)


def test_a_short_run_soak_feeds_the_virtual_camera(tmp_path: Path):
    pytest.importorskip("pyvirtualcam")
    figures = _bench(tmp_path, "--mode", "run", "--seconds", "10")
    assert figures["mode"] == "run" and figures["sink"] == "virtualcam"
    assert "bench soak --mode run --seconds 10" in figures["command"]
    (sample,) = figures["samples"]
    assert sample["sink_fps"] > 0 and sample["sessions"][0]["frames"] > 0
    assert figures["churns"] == 0 and figures["targets"]["threads_back_after_each_churn"][
        "met"] is None
    assert figures["targets"]["sessions_lost"]["value"] == 0
