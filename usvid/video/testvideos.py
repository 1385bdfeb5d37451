"""Tiny, reproducible videos for tests and benchmarks, written with PyAV (no downloads, no ffmpeg binary).

Two kinds of content:

- ``"index"``: each frame shows its own index as a 12-bit bar code, so a test can tell which frame a
  decoder returned (:func:`read_index` reads it back, robust to lossy coding).
- ``"ultrasound"``: a grey speckle sector that moves every frame, inside a static UI: a text band on top
  (a fake patient name and date), a depth ruler on the left and a logo block; :func:`ultrasound_layout`
  returns where each part is, for scan-region tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

Kind = Literal["index", "ultrasound"]
_BITS = 12


@dataclass(frozen=True)
class UltrasoundLayout:
    """Where things are in an ``"ultrasound"`` test frame; boxes are ``(x, y, w, h)`` in pixels."""

    scan: tuple[int, int, int, int]
    text_band: tuple[int, int, int, int]
    ruler: tuple[int, int, int, int]
    logo: tuple[int, int, int, int]


def ultrasound_layout(width: int, height: int) -> UltrasoundLayout:
    band = max(10, height // 8)
    margin = max(6, width // 12)
    scan = (margin + 4, band + 4, width - 2 * margin - 8, height - band - 10)
    return UltrasoundLayout(
        scan=scan,
        text_band=(0, 0, width, band),
        ruler=(0, band + 2, max(4, margin - 2), height - band - 4),
        logo=(width - margin + 2, band + 2, margin - 4, max(6, band)),
    )


def _index_frame(i: int, width: int, height: int) -> np.ndarray:
    frame = np.full((height, width), 40, np.uint8)
    bar_w = width // _BITS
    for b in range(_BITS):
        if (i >> b) & 1:
            frame[:, b * bar_w : (b + 1) * bar_w] = 215
    return frame


def read_index(frame: np.ndarray) -> int:
    """Decode the bar code of an ``"index"`` frame (``(H, W)`` grey or ``(H, W, 3)`` RGB uint8)."""
    grey = frame.mean(axis=-1) if frame.ndim == 3 else frame.astype(np.float32)
    bar_w = grey.shape[1] // _BITS
    value = 0
    for b in range(_BITS):
        strip = grey[:, b * bar_w + bar_w // 4 : (b + 1) * bar_w - bar_w // 4]
        if strip.mean() > 127:
            value |= 1 << b
    return value


def _ultrasound_frame(
    i: int, width: int, height: int, rng: np.random.Generator, speckle: np.ndarray
) -> np.ndarray:
    import cv2

    lay = ultrasound_layout(width, height)
    frame = np.zeros((height, width), np.uint8)
    x, y, w, h = lay.scan
    # Speckle that drifts and changes every frame, like tissue under a moving probe.
    shift = (i * 3) % speckle.shape[1]
    tissue = np.roll(speckle, shift, axis=1)[:h, :w].astype(np.float32)
    tissue = tissue * 0.8 + rng.integers(0, 50, size=(h, w)).astype(np.float32)
    frame[y : y + h, x : x + w] = np.clip(tissue, 0, 255).astype(np.uint8)
    th = lay.text_band[3]
    cv2.putText(frame, "DOE^JANE 1970-01-01", (2, th - 3), cv2.FONT_HERSHEY_PLAIN, th / 14, 230, 1)
    rx, ry, rw, rh = lay.ruler
    for k in range(ry, ry + rh, 8):
        frame[k : k + 2, rx : rx + rw] = 200
    lx, ly, lw, lh = lay.logo
    frame[ly : ly + lh, lx : lx + lw] = 180
    return frame


def write_test_video(
    path: str | Path,
    *,
    width: int = 94,
    height: int = 62,
    num_frames: int = 24,
    fps: int = 25,
    kind: Kind = "index",
    codec: str = "libx264",
    bframes: int = 0,
    gop: int = 12,
    vfr: bool = False,
    colour: bool = False,
    seed: int = 0,
) -> Path:
    """Write a small video; returns its path.

    Args:
        codec: ``libx264`` (yuv420p, even sizes), ``libx264rgb``-free options: ``ffv1`` or ``png`` for odd sizes
            (lossless, grey or RGB), ``mpeg4``.
        bframes: B-frames between references (``> 0`` makes decode order differ from presentation order).
        vfr: irregular frame durations (1/fps, 2/fps or 3/fps) on a millisecond time base.
        colour: tint the frames so the RGB channels differ.
    """
    from usvid.video.writer import VideoWriter

    path = Path(path)
    rng = np.random.default_rng(seed)
    speckle = rng.integers(0, 200, size=(height, width * 2)).astype(np.uint8)
    lossless = codec in ("ffv1", "png")
    pix_fmt = (
        ("rgb24" if codec == "png" else "bgr0")
        if (colour and lossless)
        else ("gray" if lossless else "yuv420p")
    )
    options = {}
    if codec == "libx264":
        options = {"bf": str(bframes), "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        options["x264-params"] = "log-level=error" if bframes else "log-level=error:bframes=0"
    elif codec == "mpeg4":
        options = {"bf": str(bframes), "g": str(gop)}
    time_base = Fraction(1, 1000) if vfr else None
    with VideoWriter(path, fps, width, height, codec=codec, pix_fmt=pix_fmt, crf=18, preset=None,
                     options=options, time_base=time_base) as writer:
        pts = 0
        for i in range(num_frames):
            grey = (
                _index_frame(i, width, height)
                if kind == "index"
                else _ultrasound_frame(i, width, height, rng, speckle)
            )
            if colour:
                rgb = np.stack([grey, (grey * 0.7).astype(np.uint8), (grey * 0.4).astype(np.uint8)], axis=-1)
                writer.write(rgb, format="rgb24", pts=pts if vfr else None)
            else:
                writer.write(grey, pts=pts if vfr else None)
            if vfr:
                pts += int(1000 / fps) * int(rng.integers(1, 4))
    return path


def write_frame_folder(
    folder: str | Path, *, width: int = 75, height: int = 52, num_frames: int = 7, suffix: str = ".png"
) -> Path:
    """A folder of ``"index"`` frames named ``frame_1, frame_2, ... frame_10`` (tests natural sorting)."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num_frames):
        cv2.imwrite(str(folder / f"frame_{i + 1}{suffix}"), _index_frame(i, width, height))
    return folder
