"""Grey frames for inference from anything the video layer reads, as ``(T, 1, H, W)`` uint8 batches.

A thin adapter over :func:`usvid.video.open_video` (video files, frame-image folders, DICOM cines), so
prediction decodes and grey-converts exactly as extraction does. It adds what inference needs: the frame
rate as an exact fraction for the overlay video, and errors that name the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from usvid.errors import InputError, ProcessingError, UsvidError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_FPS = 30.0  # sources that carry no timing (frame folders) are played at this rate


@dataclass(frozen=True)
class ClipInfo:
    """``fps`` is exact (e.g. 30000/1001) so an overlay video keeps the source's rate."""

    path: Path
    width: int
    height: int
    num_frames: int | None
    fps: Fraction


def exact_fps(fps: float | None) -> Fraction:
    """The nearest simple fraction (NTSC 30000/1001 and friends survive a float round trip)."""
    if not fps or fps <= 0 or not np.isfinite(fps):
        return Fraction(DEFAULT_FPS)
    return Fraction(fps).limit_denominator(1001)


class FrameReader:
    """Sequential grey decoding of one source; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        try:
            from usvid.video import open_video
        except ImportError:  # the package may not re-export it
            from usvid.video.reader import open_video

        self.path = Path(path)
        try:
            self._reader = open_video(self.path)
        except UsvidError:
            raise
        except Exception as err:  # decoders raise their own types for corrupt files
            raise ProcessingError(f"{self.path}: cannot open as a video ({type(err).__name__}: {err})") from None
        vi = self._reader.info
        self.info = ClipInfo(self.path, vi.width, vi.height, vi.num_frames or None, exact_fps(vi.fps))

    def batches(self, size: int) -> Iterator[tuple[torch.Tensor, list[float]]]:
        """``(T, 1, H, W)`` uint8 grey frames and their timestamps in seconds from the first frame."""
        first: float | None = None
        done = 0
        try:
            for batch in self._reader.batches(size, grey=True):
                pts = batch.pts_seconds.tolist()
                first = pts[0] if first is None else first
                done += len(batch)
                yield batch.data, [round(t - first, 6) for t in pts]
        except UsvidError:
            raise
        except Exception as err:
            raise ProcessingError(f"{self.path}: decoding failed after {done} frames "
                                  f"({type(err).__name__}: {err})") from None

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_sample_frames(path: str | Path, max_frames: int = 8) -> torch.Tensor:
    """Up to ``max_frames`` real frames ``(N, 1, H, W)`` uint8 from an image or a video (for parity checks)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise InputError(f"{path}: not a readable image")
        return torch.from_numpy(img)[None, None]
    if not path.exists():
        raise InputError(f"{path}: sample video or image does not exist")
    with FrameReader(path) as reader:
        for frames, _ in reader.batches(max_frames):
            return frames
    raise InputError(f"{path}: no frames to sample")
