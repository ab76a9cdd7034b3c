"""The webrtc benchmark's latency figures from (time, latency) samples."""

from __future__ import annotations

from benchmarks.webrtc import _factory, _figures, latency_figures
from stages.webrtc.peer_session import IdentityStage, identity_factory


def test_thirds_split_the_window_by_time():
    samples = [(t / 10, 20.0 if t < 30 else 60.0) for t in range(90)]
    figures = latency_figures(samples)
    assert figures["latency_p50_ms_first_third"] == 20.0
    assert figures["latency_p50_ms_last_third"] == 60.0
    assert figures["latency_samples"] == 90
    assert figures["latency_p95_ms"] == 60.0


def test_no_samples_gives_none_not_nan():
    figures = latency_figures([])
    assert figures["latency_p50_ms"] is None and figures["latency_p50_ms_last_third"] is None


def test_stages_are_named_or_given():
    assert _factory("identity") is identity_factory
    assert _factory(identity_factory) is identity_factory
    stages = _factory("stages.webrtc.peer_session:identity_factory")(None)  # type: ignore[arg-type]
    assert isinstance(stages[0], IdentityStage)


def test_both_webrtc_benchmarks_are_registered():
    from benchmarks import entry
    from benchmarks.registry import BENCHMARKS

    assert BENCHMARKS["webrtc"].load() is entry.webrtc
    assert BENCHMARKS["webrtc-model"].load() is entry.webrtc_model


def test_figures_are_flat_and_carry_the_servers_stage_times():
    from benchmarks.browser import BrowserRunResult

    result = BrowserRunResult(
        frames_decoded=300, seconds=10.0, freezes=1, latencies=[(0.0, 80.0), (1.0, 90.0)],
        inbound={"frameWidth": 640, "frameHeight": 480}, outbound={"framesPerSecond": 30},
        server={"fps_in": 29.5, "fps_out": 24.0, "frames_replaced": 12,
                "server_latency_ms": {"p50": 40.0, "p95": 70.0}, "drops": {"face_track": 3},
                "stages": {"generate": {"p50_ms": 20.5, "errors": 0}},
                "legs_ms": {"head": 1.0, "wait generate": 3.0, "generate": 20.0, "out": 1.0},
                "service_p50_ms": 25.0})
    figures = _figures(result, 640, 480, 30)
    assert figures["fps"] == 30.0 and figures["freezes"] == 1
    assert figures["stalls_100ms_unsure"] == 0 and figures["stall_unsure_ms_total"] == 0.0
    assert figures["latency_p50_ms"] == 85.0
    assert figures["server_fps_out"] == 24.0 and figures["server_latency_p95_ms"] == 70.0
    assert figures["server_stage_p50_ms"] == {"generate": 20.5}
    assert figures["server_drops"] == {"face_track": 3}
    assert figures["server_legs_ms"]["wait generate"] == 3.0
    # In->out against the stages' sum: how much frames waited besides their stages.
    assert figures["server_stage_p50_sum_ms"] == 20.5
    assert figures["server_latency_vs_stages"] == round(40.0 / 20.5, 3)
    # ... and against the frames' own stage time.
    assert figures["server_service_p50_ms"] == 25.0
    assert figures["server_latency_vs_service"] == round(40.0 / 25.0, 3)
    assert figures["latency_growth"] == round(90.0 / 80.0, 3)
    assert figures["server_stage_sum_growth"] is None  # no stats at the window's start


def test_stage_growth_compares_the_stages_at_the_windows_end_with_its_start():
    from benchmarks.browser import BrowserRunResult

    def stats(generate_ms, composite_ms):
        return {"stages": {"generate": {"p50_ms": generate_ms},
                           "composite": {"p50_ms": composite_ms}, "release": {"p50_ms": None}}}

    result = BrowserRunResult(frames_decoded=300, seconds=10.0, freezes=0, latencies=[],
                              server=stats(15.0, 9.0), server_start=stats(10.0, 6.0))
    assert _figures(result, 640, 480, 30)["server_stage_sum_growth"] == 1.5


def test_server_latency_growth_compares_in_out_at_the_windows_end_with_its_start():
    from benchmarks.browser import BrowserRunResult

    result = BrowserRunResult(frames_decoded=300, seconds=10.0, freezes=0, latencies=[],
                              server={"server_latency_ms": {"p50": 30.0, "p95": 50.0}},
                              server_start={"server_latency_ms": {"p50": 20.0, "p95": 40.0}})
    assert _figures(result, 640, 480, 30)["server_latency_growth"] == 1.5


def test_server_stalls_are_counted_over_the_window_where_frames_arrive_and_leave():
    from benchmarks.webrtc import server_stall_figures

    start = {"stalls_in": {"count": 1, "total_ms": 120.0},
             "stalls_out": {"count": 2, "total_ms": 300.0}}
    end = {"stalls_in": {"count": 1, "total_ms": 120.0},
           "stalls_out": {"count": 5, "total_ms": 760.5}}
    start["stalls_encoded"] = {"count": 0, "total_ms": 0.0}
    end["stalls_encoded"] = {"count": 4, "total_ms": 612.0}
    assert server_stall_figures(start, end) == {
        "server_stalls_in_100ms": 0, "server_stall_in_ms_total": 0.0,
        "server_stalls_out_100ms": 3, "server_stall_out_ms_total": 460.5,
        "server_stalls_encoded_100ms": 4, "server_stall_encoded_ms_total": 612.0}
    # A server that does not report them (an older one): unknown, not zero.
    assert set(server_stall_figures({}, end).values()) == {None}


def test_the_receivers_window_is_the_change_of_its_counters():
    from benchmarks.webrtc import receive_figures

    start = {"packetsLost": 2, "nackCount": 5, "framesDropped": 0, "jitterBufferDelay": 1.0,
             "jitterBufferEmittedCount": 100, "totalDecodeTime": 0.2, "framesDecoded": 100}
    end = {"packetsLost": 2, "nackCount": 9, "framesDropped": 1, "jitterBufferDelay": 4.0,
           "jitterBufferEmittedCount": 400, "totalDecodeTime": 0.8, "framesDecoded": 400}
    assert receive_figures(start, end) == {
        "packetsLost": 0, "nackCount": 4, "framesDropped": 1,
        "jitter_buffer_ms": 10.0, "decode_ms": 2.0}  # 3 s over 300 frames; 0.6 s over 300


def test_the_senders_window_gives_its_encode_and_pacer_delays():
    from benchmarks.webrtc import send_figures

    start = {"framesEncoded": 100, "keyFramesEncoded": 1, "totalEncodeTime": 0.3,
             "packetsSent": 400, "totalPacketSendDelay": 2.0, "nackCount": 0}
    end = {"framesEncoded": 400, "keyFramesEncoded": 2, "totalEncodeTime": 1.5,
           "packetsSent": 1600, "totalPacketSendDelay": 14.0, "nackCount": 3}
    assert send_figures(start, end) == {
        "framesEncoded": 300, "keyFramesEncoded": 1, "nackCount": 3,
        "encode_ms": 4.0, "packet_send_delay_ms": 10.0}  # 1.2 s / 300; 12 s / 1200
    assert send_figures({}, end) == {}  # no start: nothing over the window
