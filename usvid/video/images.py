"""A folder of frame images (``.png``/``.jpg``/...) read as a video, one file per frame.

Files are ordered by name with numbers compared as numbers (``frame_2`` before ``frame_10``). A folder has
no frame rate: ``fps`` defaults to :data:`DEFAULT_FOLDER_FPS` unless given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from usvid.errors import InputError, ProcessingError
from usvid.video.base import (
    DEFAULT_BATCH_SIZE,
    IMAGE_SUFFIXES,
    FrameBatch,
    ReaderBase,
    VideoInfo,
    check_frame_size,
)

DEFAULT_FOLDER_FPS = 25.0


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path, grey: bool) -> np.ndarray:
    """``(H, W)`` grey or ``(H, W, 3)`` RGB uint8; 16-bit images are scaled to 8 bits.

    Raises ProcessingError for a file whose content is not what its extension says (a JPEG named ``.png``), an
    oversized header, or an unreadable image.
    """
    import cv2

    from usvid.video.sniff import content_mismatch, header_frame_size

    problem = content_mismatch(path)
    if problem:
        raise ProcessingError(f"{path}: {problem}")
    size = header_frame_size(path)
    if size is not None:
        try:
            check_frame_size(*size, path)
        except InputError as err:
            raise ProcessingError(str(err)) from None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ProcessingError(f"{path}: not a readable image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if grey:
        return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class ImageFolderReader(ReaderBase):
    """Frames from image files; see :class:`usvid.video.base.VideoReader`."""

    def __init__(self, folder: Path, fps: float | None = None) -> None:
        self.path = folder
        self._files = list_frames(folder)
        if not self._files:
            raise InputError(f"{folder}: no frame images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        first = read_image(self._files[0], grey=True)
        self._shape = first.shape
        fps = float(fps or DEFAULT_FOLDER_FPS)
        n = len(self._files)
        self.info = VideoInfo(
            path=folder,
            width=first.shape[1],
            height=first.shape[0],
            num_frames=n,
            fps=fps,
            duration_seconds=n / fps,
            codec=self._files[0].suffix.lower().lstrip("."),
            backend="images",
        )

    def _read(self, i: int, grey: bool) -> np.ndarray:
        img = read_image(self._files[i], grey)
        if img.shape[:2] != self._shape:
            raise ProcessingError(
                f"{self._files[i]}: frame size {img.shape[1]}x{img.shape[0]} differs from the first frame's "
                f"{self._shape[1]}x{self._shape[0]}; all frames of a folder must have one size"
            )
        return img

    def batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, grey: bool = True, raw_luma: bool = False
    ) -> Iterator[FrameBatch]:
        for idx in self.index_batches(batch_size):
            yield FrameBatch.from_numpy(
                [self._read(i, grey) for i in idx], idx, [i / self.info.fps for i in idx]
            )

    def get_frames(self, indices: Sequence[int], *, grey: bool = True) -> FrameBatch:
        idx = self.check_indices(indices)
        return FrameBatch.from_numpy(
            [self._read(i, grey) for i in idx], idx, [i / self.info.fps for i in idx]
        )

    def close(self) -> None:
        pass
