import numpy as np
import pytest

from pipeline.frame import Frame
from pipeline.stage import Stage
from stages.io import NullSink, NullSinkConfig


def test_counts_frames_and_keeps_the_last():
    sink = NullSink()
    assert isinstance(sink, Stage) and sink.last is None
    frames = [Frame(i, 0, np.full((4, 6, 3), i, np.uint8)) for i in range(5)]
    sink.start()
    returned = [sink.process(f) for f in frames]
    sink.stop()
    assert returned == frames
    assert sink.count == 5 and sink.last is frames[-1]


def test_rejects_a_malformed_frame():
    sink = NullSink(NullSinkConfig(name="bench_out"))
    with pytest.raises(ValueError, match="bench_out input frame 3"):
        sink.process(Frame(3, 0, np.zeros((4, 6, 3), np.float32)))
    assert sink.count == 0
