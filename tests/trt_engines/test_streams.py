"""Stream/event plumbing: the CPU stand-in orders producer -> consumer threads."""

from __future__ import annotations

import queue
import threading

import pytest
import torch

from trt_engines.streams import CpuStream, CudaStream, DeviceStream, StreamEvent, make_stream


def test_cpu_stream_follows_the_interface():
    stream = make_stream("cpu")
    assert isinstance(stream, CpuStream) and isinstance(stream, DeviceStream)
    event = stream.record()
    assert event.recorded
    stream.wait(event)
    stream.synchronize()
    with stream.activate():
        pass


def test_waiting_on_an_unrecorded_event_times_out_with_a_reason():
    stream = CpuStream(wait_timeout=0.01)
    with pytest.raises(TimeoutError, match=r"never recorded it.*stream.record\(event\)"):
        stream.wait(stream.new_event())


def test_consumer_thread_waits_for_the_producer_event():
    # The consumer gets the event *before* the producer has done its work and
    # recorded it; its wait must hold it back until the record.
    producer_stream, consumer_stream = CpuStream(), CpuStream()
    handoff: queue.Queue[StreamEvent] = queue.Queue()
    consumer_waiting = threading.Event()
    timeline: list[str] = []
    buffer = torch.zeros(4)
    seen: list[torch.Tensor] = []

    def producer() -> None:
        event = producer_stream.new_event()
        handoff.put(event)
        consumer_waiting.wait(5)
        buffer.add_(7)  # the "kernel"
        timeline.append("produced")
        producer_stream.record(event)

    def consumer() -> None:
        event = handoff.get(timeout=5)
        consumer_waiting.set()
        consumer_stream.wait(event)
        timeline.append("consumed")
        seen.append(buffer.clone())

    threads = [threading.Thread(target=consumer), threading.Thread(target=producer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert timeline == ["produced", "consumed"]
    assert torch.equal(seen[0], torch.full((4,), 7.0))


def test_event_synchronize_on_cpu_returns_once_recorded():
    stream = CpuStream()
    event = stream.new_event()
    stream.record(event)
    event.synchronize(timeout=0.01)


def test_cuda_stream_refuses_a_cpu_device():
    with pytest.raises(ValueError, match="CUDA device"):
        CudaStream("cpu")


@pytest.mark.needs_cuda
def test_cuda_streams_order_work_across_threads():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: torch.cuda.is_available() is False")
    device = torch.device("cuda", 0)
    producer, consumer = CudaStream(device), CudaStream(device)
    x = torch.empty(1 << 20, device=device)
    with producer.activate():
        x.fill_(3)
    event = producer.record()
    consumer.wait(event)
    with consumer.activate():
        total = x.sum()
    consumer.synchronize()
    assert float(total) == 3 * (1 << 20)


def test_cpu_stream_times_between_timing_events_with_its_clock():
    ticks = iter([1.0, 1.25])
    stream = CpuStream(clock=lambda: next(ticks))
    start = stream.record(stream.new_event(timing=True))
    end = stream.record(stream.new_event(timing=True))
    assert stream.elapsed_ms(start, end) == pytest.approx(250.0)


def test_elapsed_ms_refuses_events_made_without_timing_or_not_recorded():
    stream = make_stream("cpu", clock=lambda: 0.0)
    plain = stream.record()
    timed = stream.record(stream.new_event(timing=True))
    with pytest.raises(ValueError, match="timing=True"):
        stream.elapsed_ms(plain, timed)
    with pytest.raises(ValueError, match="recorded"):
        stream.elapsed_ms(timed, stream.new_event(timing=True))


@pytest.mark.needs_cuda
def test_cuda_stream_times_its_own_work_with_events():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: torch.cuda.is_available() is False")
    stream = CudaStream(torch.device("cuda", 0))
    with stream.activate():
        start = stream.record(stream.new_event(timing=True))
        torch.ones(1 << 22, device=stream.device).cumsum(0)
        end = stream.record(stream.new_event(timing=True))
    assert stream.elapsed_ms(start, end) > 0
