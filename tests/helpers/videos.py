"""Tiny video files written with PyAV, and decoding them back (synthetic scans: usvid.video.testvideos)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from usvid.video.writer import VideoWriter


def write_video(path: Path, frames: np.ndarray, fps: int | Fraction = 15, container: str | None = None,
                gop: int | None = None, preset: str | None = "ultrafast") -> Path:
    """H.264 of RGB ``frames`` ``(T, H, W, 3)`` uint8 (even H and W) at ``fps``, through usvid's one writer;
    mp4 unless ``container`` names another format (``"mpegts"``); ``gop``: frames between keyframes;
    ``preset=None``: libx264's own."""
    rate = Fraction(fps)
    with VideoWriter(path, rate, frames.shape[2], frames.shape[1], crf=None, preset=preset, gop=gop,
                     time_base=1 / rate, container_format=container, atomic=False) as writer:
        for i, img in enumerate(frames):
            writer.write(img, pts=i, format="rgb24")
    return path


def noise_frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """``(n, H, W, 3)`` uint8 uniform noise, a fresh picture every frame."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(n)])


def decode_grey(path: Path) -> np.ndarray:
    """All frames of a video as ``(N, H, W) uint8`` luma."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])


def count_frames(path: Path) -> int:
    """How many frames the video decodes to."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def remux_faststart(src: Path, dst: Path) -> Path:
    """The packets of ``src`` in an mp4 whose index (moov) comes first: cut short, it still opens."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst
