"""One reader interface over several decoders: ``open_video(path)`` -> a :class:`VideoReader`.

The factory: it picks a backend and imports it when asked for. What the readers yield (:class:`VideoInfo`,
:class:`FrameBatch`, the :class:`VideoReader` protocol) and what they share live in the leaf
:mod:`usvid.video.base`, which the backends import instead of this module; they are re-exported here, so
``from usvid.video.reader import FrameBatch, open_video`` keeps working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from usvid.errors import InputError, unknown_name
from usvid.video.base import (
    DEFAULT_BATCH_SIZE,
    IMAGE_SUFFIXES,
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    FrameBatch,
    GreyFrame,
    ReaderBase,
    VideoInfo,
    VideoReader,
    check_frame_size,
    early_end,
    expand_range,
    full_range_lut,
    prefetch,
    rgb_to_grey,
)

__all__ = [
    "BACKENDS", "DEFAULT_BATCH_SIZE", "DEFAULT_VIDEO_BACKEND", "IMAGE_SUFFIXES", "MAX_FRAME_PIXELS",
    "MAX_FRAME_SIDE", "VIDEO_BACKENDS", "Backend", "FrameBatch", "GreyFrame", "ReaderBase", "VideoInfo",
    "VideoReader", "check_frame_size", "early_end", "expand_range", "full_range_lut", "is_dicom",
    "open_video", "prefetch", "rgb_to_grey",
]

Backend = Literal["auto", "pyav", "decord", "torchcodec", "images", "dicom"]
VIDEO_BACKENDS = ("pyav", "decord", "torchcodec")
BACKENDS = ("auto", *VIDEO_BACKENDS, "images", "dicom")
# Chosen by benchmarks/extract_bench.py (see benchmarks/results/extract.json): PyAV decodes sequentially as
# fast as the others here, is always installed, and gives the grey Y plane without a colour conversion.
DEFAULT_VIDEO_BACKEND = "pyav"


def is_dicom(path: Path) -> bool:
    """DICOM files carry ``DICM`` at byte 128 (the extension is often missing)."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def open_video(path: str | Path, backend: Backend | str = "auto", threads: int = 0, **options) -> VideoReader:
    """Open a video file, a folder of frame images or a DICOM cine.

    Args:
        path: an FFmpeg-readable file (mp4, mov, avi, mkv, ...), a folder of ``.png``/``.jpg`` frames
            (sorted by name, numbers compared as numbers), or a DICOM multi-frame file.
        backend: ``"auto"`` picks ``images`` for folders, ``dicom`` for DICOM files and
            :data:`DEFAULT_VIDEO_BACKEND` otherwise; or one of ``pyav``, ``decord``, ``torchcodec``.
        threads: FFmpeg decoding threads of a video file; 0 lets FFmpeg pick (one per core and one more;
            PyAV's ``grey_frames`` decodes ahead on a thread of its own with every core but the caller's),
            1 decodes on the calling thread alone (fastest per CPU second: for decoding several videos at once).
        options: backend options (``fps`` for image folders, ``device`` for torchcodec).
    Raises:
        InputError: missing, empty or unreadable sources; unknown backends.
        MissingDependencyError: the backend's package (decord, torchcodec, pydicom) is not installed.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise unknown_name("video backend", str(backend), BACKENDS)
    if threads < 0:
        raise InputError(f"threads must be >= 0 (0: FFmpeg picks), got {threads}")
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if backend == "auto":
        if path.is_dir():
            backend = "images"
        elif is_dicom(path):
            backend = "dicom"
        else:
            backend = DEFAULT_VIDEO_BACKEND
    if path.is_dir() and backend != "images":
        raise InputError(f"{path}: is a folder; only the 'images' backend reads folders of frames")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes); re-export or re-copy the recording")
    if path.is_file():
        from usvid.video.sniff import check_content

        check_content(path)
    if backend == "pyav":
        from usvid.video.pyav_backend import PyAVReader

        return PyAVReader(path, threads=threads)
    if backend == "decord":
        from usvid.video.decord_backend import DecordReader

        return DecordReader(path, threads=threads)
    if backend == "torchcodec":
        from usvid.video.torchcodec_backend import TorchCodecReader

        return TorchCodecReader(path, threads=threads, **options)
    if backend == "images":
        from usvid.video.images import ImageFolderReader

        return ImageFolderReader(path, **options)
    from usvid.video.dicom import DicomReader

    return DicomReader(path)
