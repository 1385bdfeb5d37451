"""What every video backend yields and the plumbing they share; a leaf: it imports no reader or backend.

Every backend yields the same containers: :class:`VideoInfo` (metadata, with the frame count taken from
the content, not only the header) and :class:`FrameBatch` (``uint8`` frames ``(T, 1, H, W)`` grey or
``(T, 3, H, W)`` RGB, with their source indices and timestamps). Frame ``i`` is the ``i``-th frame in
presentation order, so random access by index returns exactly what sequential decoding returns at ``i``,
also with B-frames and variable frame rates.

Grey is full-range luma (BT.601 weights, black = 0): the Y plane of limited-range video is expanded to
0..255, which is what an RGB -> grey conversion of the same frame gives.

The backends import from here and :func:`usvid.video.reader.open_video` imports them, so imports flow one way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

from usvid.errors import InputError

DEFAULT_BATCH_SIZE = 32
# Larger frames are refused before anything is allocated: 8K video (7680x4320) fits; a header beyond this is
# damaged or not a scan (a 30000x30000 frame alone is 900 MB, and extraction holds ~100 of them).
MAX_FRAME_SIDE = 16384
MAX_FRAME_PIXELS = 8192 * 8192
T = TypeVar("T")


def check_frame_size(width: int, height: int, where: str | Path) -> None:
    """Raise :class:`InputError` for a frame size no scan has: not positive, or over the limits above."""
    if width <= 0 or height <= 0:
        raise InputError(
            f"{where}: frame size {width}x{height} is not a valid video size (FFmpeg gives 0x0 when the header's "
            "size is missing or too large to decode); re-export the recording"
        )
    if max(width, height) > MAX_FRAME_SIDE or width * height > MAX_FRAME_PIXELS:
        raise InputError(
            f"{where}: frame size {width}x{height} is over the limit of {MAX_FRAME_SIDE} pixels a side and "
            f"{MAX_FRAME_PIXELS / 1e6:.0f} megapixels (8192x8192); the header is damaged or this is not a scan "
            "recording, re-export it at a smaller size"
        )


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows about its source before decoding it.

    ``num_frames`` is counted from the content (packets, files or DICOM frames); ``num_frames_header`` and
    ``duration_header_seconds`` are what the container claims (``None`` when it says nothing): a file cut short
    has fewer frames than its header declares (see :func:`early_end`). ``fps`` is the average rate
    (``num_frames / duration_seconds`` where the timestamps allow it).
    """

    path: Path
    width: int
    height: int
    num_frames: int
    fps: float
    duration_seconds: float
    codec: str
    backend: str
    num_frames_header: int | None = None
    duration_header_seconds: float | None = None

    def __post_init__(self) -> None:
        check_frame_size(self.width, self.height, self.path)


def early_end(info: VideoInfo, decoded: int, last_seconds: float | None) -> str | None:
    """Why decoding that stopped after ``decoded`` frames (the last at ``last_seconds``) ended early, or None.

    The declared frame count is compared exactly; the declared duration (containers without a count, such as
    Matroska) with a margin of 3 frames or 1%, as the last frame's duration is not known.
    """
    declared = info.num_frames_header
    if declared and decoded < declared:
        return (
            f"decoding ended after {decoded} of the {declared} frames the container declares "
            f"({declared - decoded} missing); the file is probably truncated, re-copy or re-export it"
        )
    seconds = info.duration_header_seconds
    if not declared and seconds and last_seconds is not None and info.fps > 0:
        missing = seconds - (last_seconds + 1.0 / info.fps)
        if missing > max(3.0 / info.fps, 0.01 * seconds):
            return (
                f"decoding ended at {last_seconds + 1.0 / info.fps:.2f} s of the {seconds:.2f} s the container "
                f"declares (about {round(missing * info.fps)} frames missing); the file is probably truncated, "
                "re-copy or re-export it"
            )
    return None


@dataclass(frozen=True)
class FrameBatch:
    """Decoded frames with where they came from.

    Attributes:
        data: ``(T, C, H, W)`` uint8 in [0, 255]; ``C`` is 1 (grey) or 3 (RGB).
        indices: ``(T,)`` int64 source frame indices (presentation order).
        pts_seconds: ``(T,)`` float64 presentation timestamps in seconds.
        limited_range: grey data still in limited range (only when asked for with ``raw_luma=True``).
    """

    data: torch.Tensor
    indices: torch.Tensor
    pts_seconds: torch.Tensor
    limited_range: bool = False

    def __post_init__(self) -> None:
        if self.data.ndim != 4 or self.data.shape[1] not in (1, 3) or self.data.dtype != torch.uint8:
            raise ValueError(
                f"data must be (T, 1|3, H, W) uint8, got {tuple(self.data.shape)} {self.data.dtype}"
            )
        t = self.data.shape[0]
        if self.indices.shape != (t,) or self.pts_seconds.shape != (t,):
            raise ValueError(
                f"indices {tuple(self.indices.shape)} and pts_seconds {tuple(self.pts_seconds.shape)} must be ({t},)"
            )

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        return (
            f"FrameBatch(data={tuple(self.data.shape)} {self.data.dtype} {self.data.device}, "
            f"indices={self.indices.tolist()[:4]}{'...' if len(self) > 4 else ''})"
        )

    @classmethod
    def from_numpy(cls, frames: list[np.ndarray], indices: list[int], pts: list[float]) -> FrameBatch:
        """Stack ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 arrays into a batch (one copy)."""
        if not frames:
            return cls.empty()
        stacked = np.stack(frames)
        data = torch.from_numpy(stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2))
        return cls(
            data.contiguous(),
            torch.tensor(indices, dtype=torch.int64),
            torch.tensor(pts, dtype=torch.float64),
        )

    @classmethod
    def empty(cls, channels: int = 1) -> FrameBatch:
        return cls(
            torch.empty((0, channels, 0, 0), dtype=torch.uint8),
            torch.empty(0, dtype=torch.int64),
            torch.empty(0, dtype=torch.float64),
        )


class GreyFrame(NamedTuple):
    """One decoded frame, grey.

    Attributes:
        grey: ``(H, W)`` uint8, possibly a view of the decoder's memory: valid only until the next frame is
            asked for (copy what you keep).
        limited_range: ``grey`` is still limited-range luma (only when asked for with ``raw_luma=True``).
    """

    index: int
    seconds: float
    grey: np.ndarray
    limited_range: bool = False


@runtime_checkable
class VideoReader(Protocol):
    """A source of frames; use it as a context manager so the container is always closed."""

    info: VideoInfo

    def batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, grey: bool = True, raw_luma: bool = False
    ) -> Iterator[FrameBatch]:
        """Decode every frame in order, ``batch_size`` at a time; at most one batch is held.

        ``raw_luma=True`` allows grey batches in the source's limited range (16..235), saving the range
        expansion on the decoding thread; such batches say ``limited_range=True`` and the caller expands them
        with :func:`expand_range` (after cropping, say). Backends that decode to RGB ignore it.
        """
        ...

    def grey_frames(self, *, raw_luma: bool = False) -> Iterator[GreyFrame]:
        """Every frame in order, grey, one at a time, the same values as :meth:`batches` gives.

        The cheapest way through a video when each frame is used once: a backend may hand out its decoded
        memory without a copy (PyAV does), so a frame is valid only until the next one is asked for.
        """
        ...

    def get_frames(self, indices: Sequence[int], *, grey: bool = True) -> FrameBatch:
        """Frames at ``indices`` (any order, repeats allowed), exactly as :meth:`batches` yields them."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> VideoReader: ...

    def __exit__(self, *exc: object) -> None: ...


class ReaderBase:
    """Context-manager plumbing and index checks shared by the backends."""

    info: VideoInfo

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def grey_frames(self, *, raw_luma: bool = False) -> Iterator[GreyFrame]:
        for batch in self.batches(DEFAULT_BATCH_SIZE, grey=True, raw_luma=raw_luma):
            stamps = batch.pts_seconds.tolist()
            for k, (index, grey) in enumerate(zip(batch.indices.tolist(), batch.data[:, 0].numpy())):
                yield GreyFrame(index, stamps[k], grey, batch.limited_range)

    def index_batches(self, batch_size: int) -> Iterator[list[int]]:
        """Consecutive frame indices ``[0, batch_size), [batch_size, 2 * batch_size), ...`` of the whole video."""
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        for start in range(0, self.info.num_frames, batch_size):
            yield list(range(start, min(start + batch_size, self.info.num_frames)))

    def check_indices(self, indices: Sequence[int]) -> list[int]:
        out = [int(i) for i in indices]
        bad = [i for i in out if i < 0 or i >= self.info.num_frames]
        if bad:
            raise InputError(
                f"{self.info.path}: frame index {bad[0]} is out of range; the video has "
                f"{self.info.num_frames} frames (0..{self.info.num_frames - 1})"
            )
        return out


def prefetch(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Decode ahead in a background thread, at most ``depth`` batches (or frames) ahead (memory stays bounded).

    FFmpeg, decord and OpenCV release the GIL, so decoding the next batch overlaps the caller's work on
    this one. The caller must exhaust or close the generator before closing the reader; on early exit the
    thread is stopped and joined here.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        q.put(batch, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as err:  # handed to the consumer, raised there
            q.put(err)

    thread = threading.Thread(target=work, name="usvid-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def full_range_lut() -> np.ndarray:
    """``(256,)`` uint8 table expanding limited-range luma (16..235) to 0..255, as swscale does."""
    return np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)


_GAIN, _OFFSET = 255.0 / 219.0, -16.0 * 255.0 / 219.0


def expand_range(grey: np.ndarray) -> np.ndarray:
    """Limited-range luma -> full range, in place; ``grey`` is any-shape uint8 (C-contiguous rows).

    The values of :func:`full_range_lut`, computed as ``saturate(round(gain * y + offset))``: vectorised,
    twice as fast as ``cv2.LUT`` here.
    """
    import cv2

    flat = grey.reshape(-1, grey.shape[-1])
    cv2.addWeighted(flat, _GAIN, flat, 0.0, _OFFSET, dst=flat)
    return grey


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3)`` uint8 RGB -> ``(..., H, W)`` uint8 BT.601 luma."""
    import cv2

    if rgb.ndim == 3:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
