"""The seed corpora of the fuzz targets: small files made by code, kept in ``corpus/``.

``python -m tests.fuzz.corpus`` writes them again (SDP offers from a real
aiortc peer, pictures, tiny videos, tiny checkpoints); the tests read the
files, so every run starts from the same seeds. Each file is a few kB.
"""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from tests.fuzz import images

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
KINDS = ("sdp", "avatars", "videos", "checkpoints")


def seeds(kind: str) -> dict[str, bytes]:
    """``{file name: bytes}`` of one kind's seeds, sorted by name."""
    folder = CORPUS_DIR / kind
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --------------------------------------------------------------------------- SDP


async def _aiortc_offer(channel: bool, audio: bool) -> str:
    from aiortc.mediastreams import AudioStreamTrack

    from stages.webrtc.ice import ice_host_addresses
    from tests.webrtc.peers import TestPeer

    with ice_host_addresses(["127.0.0.1"]):
        peer = TestPeer()
        if audio:
            peer.pc.addTrack(AudioStreamTrack())
        if channel:
            peer.pc.createDataChannel("control")
        try:
            return await peer.offer()
        finally:
            await peer.close()


def sdp_seeds() -> dict[str, bytes]:
    shapes = {"video.sdp": (False, False), "video-channel.sdp": (True, False),
              "video-audio-channel.sdp": (True, True)}
    return {name: asyncio.run(_aiortc_offer(*shape)).encode() for name, shape in shapes.items()}


# --------------------------------------------------------------------------- pictures


def avatar_seeds() -> dict[str, bytes]:
    rgb = images.pattern(80, 96)
    jpeg = images.encode(rgb, ".jpg")
    return {
        "rgb.png": images.encode(rgb, ".png"),
        "rgb.jpg": jpeg,
        "progressive.jpg": images.encode(rgb, ".jpg", 2, 1),  # IMWRITE_JPEG_PROGRESSIVE
        "gray.png": images.encode(images.pattern(80, 96, 1), ".png"),
        "gray.jpg": images.encode(images.pattern(80, 96, 1), ".jpg"),
        "gray16.png": images.encode(images.pattern(80, 96, 1, np.uint16), ".png"),
        "rgb16.png": images.encode(images.pattern(80, 96, 3, np.uint16), ".png"),
        "rgba.png": images.encode(images.pattern(80, 96, 4), ".png"),
        "rgba16.png": images.encode(images.pattern(80, 96, 4, np.uint16), ".png"),
        "cmyk.jpg": images.cmyk_jpeg(),
        "exif-rotated.jpg": images.with_exif_orientation(jpeg),
        "bomb-header.png": images.png_claiming(30_000, 30_000),
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "empty.png": b"",
    }


# --------------------------------------------------------------------------- videos


def _video(fmt: str, codec: str, frames: int, pix_fmt: str = "yuv420p") -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, pix_fmt
        for i in range(frames):
            picture = av.VideoFrame.from_ndarray(images.pattern(32, 24) + i * 20, format="rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
        if frames == 0:
            container.start_encoding()  # the header of a file with a stream and no frame
    return buffer.getvalue()


def _audio_only() -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                             layout="mono")
        samples.sample_rate, samples.pts, samples.time_base = 8000, 0, Fraction(1, 8000)
        container.mux(stream.encode(samples))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def video_seeds() -> dict[str, bytes]:
    return {
        "h264.mp4": _video("mp4", "libx264", 4),
        "h264.mov": _video("mov", "libx264", 4),
        "vp8.mkv": _video("matroska", "libvpx", 4),
        "vp9.webm": _video("webm", "libvpx-vp9", 4),
        "raw.y4m": _video("yuv4mpegpipe", "rawvideo", 3),
        "mjpeg.avi": _video("avi", "mjpeg", 3, "yuvj420p"),
        "mpeg2.ts": _video("mpegts", "mpeg2video", 4),
        "zero-frames.avi": _video("avi", "mjpeg", 0, "yuvj420p"),
        "zero-frames.y4m": b"YUV4MPEG2 W32 H24 F10:1 Ip A1:1 C420jpeg\n",
        "audio-only.mkv": _audio_only(),
        "picture-named.mp4": images.encode(images.pattern(32, 24), ".png"),
    }


# --------------------------------------------------------------------------- checkpoints


def tiny_generator():  # -> networks.generator.Generator
    """A ViCoFace generator of 8 px (about 4,700 weights), seeded."""
    import torch

    from networks.config import custom_config
    from networks.generator import Generator

    torch.manual_seed(0)
    config = custom_config("vicoface-64s", name="vicoface-fuzz", size=8, channels=(8, 8),
                           style_dim=8, motion_dim=2, id_dim=1, n_fc=1)
    return Generator(config).eval()


def _torch_bytes(value: object) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def checkpoint_seeds(folder: Path) -> dict[str, bytes]:
    import argparse as args_module

    from networks.checkpoint import TrainingDomain, save_checkpoint

    generator = tiny_generator()
    path = folder / "tiny.safetensors"
    save_checkpoint(path, generator, domain=TrainingDomain.SYNTHETIC_WORLD)
    state = generator.state_dict()
    namespace = args_module.Namespace(latent_dim_motion=2, latent_dim_id=1)
    return {
        "tiny.safetensors": path.read_bytes(),
        "release.pt": _torch_bytes({"gen": state, "args": namespace}),
        "bare.pt": _torch_bytes(state),
    }


# --------------------------------------------------------------------------- writing


def write_corpus(root: Path = CORPUS_DIR) -> list[Path]:
    """Make every seed and write it under ``root/<kind>/``; the paths written."""
    makers: dict[str, Callable[[], dict[str, bytes]]] = {
        "sdp": sdp_seeds, "avatars": avatar_seeds, "videos": video_seeds,
        "checkpoints": lambda: checkpoint_seeds(root / "checkpoints"),
    }
    written = []
    for kind, make in makers.items():
        (root / kind).mkdir(parents=True, exist_ok=True)
        for name, data in make().items():
            (root / kind / name).write_bytes(data)
            written.append(root / kind / name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=CORPUS_DIR)
    for path in write_corpus(parser.parse_args().root):
        print(f"{path.stat().st_size:>7} {path}")


if __name__ == "__main__":
    main()
