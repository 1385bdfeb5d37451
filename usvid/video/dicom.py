"""DICOM multi-frame ultrasound cine (``pydicom``, optional extra ``usvid[dicom]``).

Only pixel data, frame size, frame count and frame rate are read: no patient or study attribute is kept
on the reader, logged or passed on, so nothing identifying leaves the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from usvid.errors import InputError, ProcessingError, optional_import
from usvid.video.base import DEFAULT_BATCH_SIZE, FrameBatch, ReaderBase, VideoInfo, rgb_to_grey

DEFAULT_DICOM_FPS = 25.0


def _frame_rate(ds) -> float:
    frame_time = ds.get("FrameTime")  # milliseconds between frames
    if frame_time:
        return 1000.0 / float(frame_time)
    for tag in ("CineRate", "RecommendedDisplayFrameRate"):
        if ds.get(tag):
            return float(ds.get(tag))
    return DEFAULT_DICOM_FPS


class DicomReader(ReaderBase):
    """A DICOM cine; see :class:`usvid.video.base.VideoReader`."""

    def __init__(self, path: Path) -> None:
        pydicom = optional_import("pydicom", "dicom")
        self.path = path
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            rows, cols = int(ds.Rows), int(ds.Columns)
        except (pydicom.errors.InvalidDicomError, AttributeError, OSError, ValueError) as err:
            raise InputError(f"{path}: not a readable DICOM image ({err})") from None
        self._photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        self._bits = int(ds.get("BitsStored", 8))
        n = int(ds.get("NumberOfFrames", 1) or 1)
        fps = _frame_rate(ds)
        self.info = VideoInfo(
            path=path,
            width=cols,
            height=rows,
            num_frames=n,
            fps=fps,
            duration_seconds=n / fps,
            codec=ds.file_meta.TransferSyntaxUID.name if "TransferSyntaxUID" in ds.file_meta else "unknown",
            backend="dicom",
            num_frames_header=n,
        )

    def _convert(self, arr: np.ndarray, grey: bool) -> np.ndarray:
        if arr.dtype != np.uint8:
            arr = np.clip(arr.astype(np.int64) >> max(self._bits - 8, 0), 0, 255).astype(np.uint8)
        if arr.ndim == 2:
            if self._photometric == "MONOCHROME1":
                arr = 255 - arr
            return arr if grey else np.repeat(arr[..., None], 3, axis=-1)
        return rgb_to_grey(arr) if grey else arr

    def _frames(self, indices: list[int], grey: bool) -> list[np.ndarray]:
        from pydicom.pixels import iter_pixels

        order = sorted(set(indices))
        try:
            # iter_pixels decodes one frame at a time (bounded memory) and converts YBR to RGB.
            decoded = dict(
                zip(order, (self._convert(a, grey) for a in iter_pixels(str(self.path), indices=order)))
            )
        except Exception as err:  # pydicom raises many types for broken pixel data
            raise ProcessingError(f"{self.path}: cannot decode the DICOM pixel data ({err})") from None
        if len(decoded) != len(order):
            raise ProcessingError(f"{self.path}: the pixel data holds fewer frames than NumberOfFrames")
        return [decoded[i] for i in indices]

    def batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, grey: bool = True, raw_luma: bool = False
    ) -> Iterator[FrameBatch]:
        for idx in self.index_batches(batch_size):
            yield FrameBatch.from_numpy(self._frames(idx, grey), idx, [i / self.info.fps for i in idx])

    def get_frames(self, indices: Sequence[int], *, grey: bool = True) -> FrameBatch:
        idx = self.check_indices(indices)
        return FrameBatch.from_numpy(self._frames(idx, grey), idx, [i / self.info.fps for i in idx])

    def close(self) -> None:
        pass
