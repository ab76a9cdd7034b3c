import itertools
import logging
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.frame import Frame
from pipeline.stage import Source, SourceFrame
from stages.io import (
    PatternConfig,
    PatternSource,
    SourceError,
    VideoFileSink,
    VideoFileSinkConfig,
    VideoFileSource,
    VideoFileSourceConfig,
)
from stages.io.video import partial_path
from stages.stamp import read_stamp


def _drain(source: Source, limit: int = 10_000) -> list[SourceFrame]:
    frames: list[SourceFrame] = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def _frames(count: int, width: int = 320, height: int = 240, fps: int = 30) -> list[Frame]:
    """Synthetic frames with their stamps, wrapped as the runtime would."""
    source = PatternSource(PatternConfig(width=width, height=height, fps=fps, frames=count))
    source.open()
    rate = Fraction(1, fps)
    return [Frame(seq=i, capture_ns=0, image=f.image, pts=f.pts, time_base=f.time_base or rate)
            for i, f in enumerate(_drain(source))]


def _pts(frames: list[SourceFrame]) -> list[int]:
    pts = [f.pts for f in frames]
    assert all(p is not None for p in pts), "a video file frame came without pts"
    return [p for p in pts if p is not None]


def _seconds(frame: SourceFrame) -> Fraction:
    assert frame.pts is not None and frame.time_base is not None
    return frame.pts * frame.time_base


def _write(path: Path, frames: list[Frame], **config) -> VideoFileSink:
    sink = VideoFileSink(VideoFileSinkConfig(path, preset="ultrafast", **config))
    sink.start()
    try:
        for frame in frames:
            assert sink.process(frame) is frame
    finally:
        sink.stop()
    return sink


def _read(path: Path, **config) -> list[SourceFrame]:
    source = VideoFileSource(VideoFileSourceConfig(path, **config))
    source.open()
    try:
        return _drain(source)
    finally:
        source.close()


# ----------------------------------------------------------------- source on real media


def test_reads_the_shared_driving_clip(shared_media):
    source = VideoFileSource(VideoFileSourceConfig(shared_media / "driving1.mp4"))
    info = source.open()
    frames = _drain(source)
    source.close()
    assert (info.width, info.height, info.self_paced) == (256, 256, False)
    assert info.frame_rate == Fraction(10) and info.frame_count == len(frames) == 652
    assert all(f.image.shape == (256, 256, 3) and f.image.dtype == np.uint8 for f in frames)
    pts = _pts(frames)
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert frames[0].time_base == Fraction(1, 10240)
    # 10 fps in a 1/10240 time base: one frame is 1024 ticks.
    assert pts[1] - pts[0] == 1024


def test_resizes_and_limits_frames(shared_media):
    source = VideoFileSource(VideoFileSourceConfig(shared_media / "driving2.mp4",
                                                   size=(160, 120), frames=12))
    info = source.open()
    frames = _drain(source)
    source.close()
    assert (info.width, info.height, info.frame_count) == (160, 120, 12)
    assert len(frames) == 12 and all(f.image.shape == (120, 160, 3) for f in frames)


def test_decoded_colours_are_rgb(tmp_path):
    red = np.zeros((64, 96, 3), np.uint8)
    red[..., 0] = 220
    frames = [Frame(i, 0, red.copy(), pts=i, time_base=Fraction(1, 30)) for i in range(3)]
    _write(tmp_path / "red.mp4", frames, crf=10)
    image = _read(tmp_path / "red.mp4")[0].image
    assert image[..., 0].mean() > 180 and image[..., 1:].mean() < 40


def test_loop_restarts_with_increasing_pts(tmp_path):
    _write(tmp_path / "five.mp4", _frames(5))
    frames = _read(tmp_path / "five.mp4", loop=True, frames=12)
    assert [read_stamp(f.image) for f in frames] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    pts = _pts(frames)
    steps = {b - a for a, b in itertools.pairwise(pts)}
    assert len(steps) == 1 and steps.pop() > 0


def test_looping_source_reports_no_frame_count(tmp_path):
    _write(tmp_path / "five.mp4", _frames(5))
    source = VideoFileSource(VideoFileSourceConfig(tmp_path / "five.mp4", loop=True))
    assert source.open().frame_count is None
    source.close()


# ----------------------------------------------------------------- source errors


def test_missing_file_says_so(tmp_path):
    source = VideoFileSource(VideoFileSourceConfig(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match=r"video file not found: .*nope\.mp4"):
        source.open()


def test_not_a_video_says_so(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 50)
    with pytest.raises(SourceError, match=r"cannot read .*notes\.mp4 as a video"):
        VideoFileSource(VideoFileSourceConfig(path)).open()


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(SourceError, match="no video stream"):
        VideoFileSource(VideoFileSourceConfig(path)).open()


def _damaged_clip(path: Path) -> Path:
    _write(path, _frames(40, width=160, height=120), crf=18)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)
    data[middle : middle + 4000] = noise.tobytes()
    path.write_bytes(bytes(data))
    return path


def test_damage_mid_file_is_skipped_with_a_warning(tmp_path, caplog):
    path = _damaged_clip(tmp_path / "clip.mp4")
    with caplog.at_level(logging.WARNING, logger="stages.io.video"):
        frames = _read(path)
    stamps = [read_stamp(f.image) for f in frames]
    assert 5 < len(frames) < 40
    assert stamps[:5] == [0, 1, 2, 3, 4]
    # Damaged pictures read as None, never as a wrong or repeated index.
    known = [s for s in stamps if s is not None]
    assert known == sorted(set(known)) and set(known) <= set(range(40))
    assert any("damaged packet" in r.message for r in caplog.records)


def test_too_much_damage_in_a_row_ends_the_stream(tmp_path, caplog):
    path = _damaged_clip(tmp_path / "clip.mp4")
    tolerant = len(_read(path))
    with caplog.at_level(logging.WARNING, logger="stages.io.video"):
        strict = _read(path, max_bad_packets=1)
    assert 5 < len(strict) < tolerant
    assert any("ending the stream" in r.message for r in caplog.records)


def test_read_after_close_ends_the_stream(shared_media):
    source = VideoFileSource(VideoFileSourceConfig(shared_media / "driving2.mp4"))
    source.open()
    assert source.read() is not None
    source.close()
    assert source.read() is None


def test_close_from_another_thread_while_reading(tmp_path):
    # The runtime closes a source from its own thread; a read in flight must
    # finish (or see the end) rather than decode from a freed container.
    _write(tmp_path / "five.mp4", _frames(5))
    source = VideoFileSource(VideoFileSourceConfig(tmp_path / "five.mp4", loop=True))
    source.open()
    started, results = threading.Event(), []

    def reader() -> None:
        while (frame := source.read()) is not None:
            results.append(read_stamp(frame.image))
            started.set()

    thread = threading.Thread(target=reader)
    thread.start()
    started.wait(timeout=30)
    source.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert results and all(r in range(5) for r in results)


def test_read_before_open_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="before open"):
        VideoFileSource(VideoFileSourceConfig(tmp_path / "x.mp4")).read()


# ----------------------------------------------------------------- sink


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_sink_to_source_keeps_count_order_and_size(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    sink = _write(path, _frames(24), crf=28)
    assert sink.frames_written == 24 and path.is_file()
    assert not partial_path(path).exists()
    frames = _read(path)
    assert [read_stamp(f.image) for f in frames] == list(range(24))
    assert all(f.image.shape == (240, 320, 3) for f in frames)


def test_sink_keeps_source_timing(tmp_path):
    # A variable-rate stream: 0, 0.1, 0.3, 0.35 s.
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10), Fraction(7, 20)]
    base = Fraction(1, 1000)
    frames = [Frame(i, 0, f.image, pts=int(t / base), time_base=base)
              for i, (t, f) in enumerate(zip(times, _frames(4), strict=True))]
    _write(tmp_path / "vfr.mp4", frames)
    read = _read(tmp_path / "vfr.mp4")
    seconds = [_seconds(f) - _seconds(read[0]) for f in read]
    assert [round(float(s), 3) for s in seconds] == [float(t) for t in times]


def test_sink_counts_time_at_its_rate_when_frames_have_no_pts(tmp_path):
    frames = [Frame(i, 0, f.image) for i, f in enumerate(_frames(6))]
    _write(tmp_path / "nopts.mp4", frames, fps=25)
    read = _read(tmp_path / "nopts.mp4")
    seconds = [float(_seconds(f)) for f in read]
    assert np.allclose(np.diff(seconds), 1 / 25, atol=1e-3)


def test_sink_resizes_frames_of_another_size_with_one_warning(tmp_path, caplog):
    frames = _frames(3)
    small = _frames(3, width=160, height=120)
    mixed = [frames[0], small[1], small[2]]
    with caplog.at_level(logging.WARNING, logger="stages.io.video"):
        sink = _write(tmp_path / "mixed.mp4", mixed)
    assert sink.frames_resized == 2
    assert sum("resizing" in r.message for r in caplog.records) == 1
    read = _read(tmp_path / "mixed.mp4")
    assert [f.image.shape for f in read] == [(240, 320, 3)] * 3
    assert [read_stamp(f.image) for f in read] == [0, 1, 2]


def test_sink_drops_an_odd_row_and_column(tmp_path):
    odd = [Frame(i, 0, np.ascontiguousarray(f.image[:239, :319]), pts=f.pts,
                 time_base=f.time_base) for i, f in enumerate(_frames(3))]
    sink = _write(tmp_path / "odd.mp4", odd)
    assert sink.frames_resized == 0
    assert [f.image.shape for f in _read(tmp_path / "odd.mp4")] == [(238, 318, 3)] * 3


def test_interrupted_sink_keeps_a_playable_file(tmp_path):
    path = tmp_path / "deep" / "dir" / "run.mp4"
    sink = VideoFileSink(VideoFileSinkConfig(path, preset="ultrafast"))
    sink.start()
    frames = _frames(20)
    with pytest.raises(KeyboardInterrupt):
        try:
            for frame in frames:
                if frame.seq == 13:
                    raise KeyboardInterrupt
                sink.process(frame)
                assert not path.exists()  # never a half-written file under the final name
        finally:
            sink.stop()
    assert path.is_file() and not partial_path(path).exists()
    assert [read_stamp(f.image) for f in _read(path)] == list(range(13))


def test_sink_without_frames_leaves_no_file(tmp_path, caplog):
    path = tmp_path / "empty.mp4"
    with caplog.at_level(logging.WARNING, logger="stages.io.video"):
        _write(path, [])
    assert not path.exists() and not partial_path(path).exists()
    assert any("no frames" in r.message for r in caplog.records)


def test_sink_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "again.mp4"
    path.write_bytes(b"old")
    _write(path, _frames(2))
    assert len(_read(path)) == 2


@pytest.mark.parametrize("name", ["out.avi", "out.gif", "out"])
def test_sink_refuses_unknown_endings(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.mp4, \.mkv, \.mov"):
        VideoFileSinkConfig(tmp_path / name)


@pytest.mark.parametrize(("field", "value", "message"),
                         [("crf", 60, "0-51"), ("preset", "warp", "preset"), ("fps", 0, "fps")])
def test_sink_config_is_validated(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        VideoFileSinkConfig(tmp_path / "o.mp4", **{field: value})


def test_sink_process_before_start_is_an_error(tmp_path):
    sink = VideoFileSink(VideoFileSinkConfig(tmp_path / "o.mp4"))
    with pytest.raises(RuntimeError, match="before start"):
        sink.process(_frames(1)[0])


def test_sink_rejects_a_malformed_frame(tmp_path):
    sink = VideoFileSink(VideoFileSinkConfig(tmp_path / "o.mp4"))
    sink.start()
    try:
        with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
            sink.process(Frame(0, 0, np.zeros((8, 8), np.uint8)))
    finally:
        sink.stop()


# ---- what fuzzing found (tests/fuzz/test_fuzz_videos.py) ------------------------------------
def _seed(name: str) -> bytes:
    from tests.fuzz.corpus import seeds

    return seeds("videos")[name]


def _titled_clip(path: Path, title: bytes) -> Path:
    """A VP8 clip whose title tag holds ``title`` (any bytes, nine of them)."""
    with av.open(str(path), "w", format="matroska") as container:
        container.metadata["title"] = "TITLE-TAG"
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for _ in range(3):
            picture = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    path.write_bytes(path.read_bytes().replace(b"TITLE-TAG", title))
    return path


def test_tags_that_are_not_utf8_do_not_stop_the_file(tmp_path):
    path = _titled_clip(tmp_path / "clip.mkv", b"\xff\xfe-TAG-\xc3(")
    assert len(_read(path)) == 3


def test_a_stream_without_a_decoder_is_a_source_error(tmp_path):
    path = tmp_path / "clip.mkv"
    path.write_bytes(_seed("vp8.mkv").replace(b"V_VP8", b"V_ZZ8"))
    with pytest.raises(SourceError, match="no decoder"):
        VideoFileSource(VideoFileSourceConfig(path)).open()


def test_a_loop_over_a_file_that_cannot_seek_ends_the_stream(tmp_path, caplog):
    data = bytearray(_seed("mjpeg.avi"))
    data[136] = 0xFF  # a damaged stream header: every frame reads, seeking back fails
    path = tmp_path / "clip.avi"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="stages.io.video"):
        frames = _read(path, loop=True, frames=30)
    assert 0 < len(frames) < 30
    assert any("cannot seek back" in r.message for r in caplog.records)


def test_frames_larger_than_max_pixels_are_refused_before_decoding(tmp_path):
    # A 755-byte VP8 clip whose keyframes claim 13600x10008 (408 MB of RGB per frame).
    data = bytearray(_seed("vp8.mkv"))
    start = data.find(b"\x9d\x01\x2a")
    data[start + 3: start + 7] = (13600).to_bytes(2, "little") + (10008).to_bytes(2, "little")
    path = tmp_path / "clip.mkv"
    path.write_bytes(bytes(data))
    assert _read(path) == []
    y4m = tmp_path / "big.y4m"
    y4m.write_bytes(b"YUV4MPEG2 W9000 H9000 F10:1 C420jpeg\nFRAME\n")
    with pytest.raises(SourceError, match="more than the 33177600 pixels"):
        VideoFileSource(VideoFileSourceConfig(y4m)).open()
