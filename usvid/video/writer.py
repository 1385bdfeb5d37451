"""The one video writer: H.264 (libx264, yuv420p) through PyAV, written atomically.

Every encoded video of the project goes through :class:`VideoWriter`: predict's overlay videos, the stream
recorder, the synthetic dataset and the test videos. A writer is a context manager: a block that ends
cleanly flushes the encoder and renames the file into place; one that raises leaves nothing under the final
name (:func:`usvid.io.atomic_path`). ``atomic=False`` writes straight into ``path``, for a caller that
already writes to a temporary name (the synth ledger) or wants a file that grows in place (the fragmented
recording a hard kill must not lose).

4:2:0 chroma needs even sides: the stream of an odd-sized video is one pixel wider or taller and each frame
is padded by repeating its last column or row. The lossless codecs ``ffv1`` and ``png`` (grey or RGB,
any size) are for tests that must read back exact pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import Self

import numpy as np

from usvid.errors import InputError
from usvid.io import atomic_path

#: Container format by file suffix; the temporary file's own suffix (``.tmp``) says nothing.
CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi",
                     ".webm": "webm", ".ts": "mpegts"}
#: Codecs the writer is used with, and the pixel format each stores by default.
CODECS = {"libx264": "yuv420p", "mpeg4": "yuv420p", "ffv1": "gray", "png": "rgb24"}


def frame_rate(fps: float | Fraction) -> Fraction:
    """``fps`` as the exact rate a stream needs (29.97 -> 2997/100; a Fraction is kept as it is)."""
    if isinstance(fps, Fraction):
        return fps
    if not fps > 0:
        raise InputError(f"frame rate must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _container_format(path: Path, given: str | None, atomic: bool) -> str | None:
    if given is not None:
        return given
    found = CONTAINER_FORMATS.get(path.suffix.lower())
    if found is None and atomic:
        raise InputError(f"{path}: cannot tell the container from the suffix '{path.suffix}'; use one of "
                         f"{', '.join(CONTAINER_FORMATS)} or pass container_format")
    return found


class VideoWriter:
    """Encode ``(H, W)`` grey or ``(H, W, 3)`` BGR ``uint8`` frames into ``path``.

    Args:
        fps: the stream's rate (a float is turned into a Fraction with a denominator up to 1001).
        width, height: the frames' size; odd sides of a 4:2:0 stream are padded (see the module docstring).
        codec: ``libx264`` (default), ``mpeg4``, or lossless ``ffv1``/``png``.
        pix_fmt: the stored pixel format; default: the codec's (``yuv420p`` for H.264).
        crf, preset, tune: libx264 rate/speed settings; None leaves the encoder's default.
        gop: frames per keyframe interval; None: the encoder's default.
        threads: encoder threads; 1 makes the bitstream the same on every machine (synth needs that).
        options: further encoder options (``{"bf": "2"}``), as FFmpeg spells them.
        time_base: time base of the ``pts`` given to :meth:`write` (e.g. ``Fraction(1, 1000)`` for
            millisecond timestamps); None: frames are numbered in ``1 / fps`` steps.
        container_format: FFmpeg's muxer name; default: from the suffix of ``path``.
        container_options: muxer options (``movflags`` for a fragmented mp4).
        atomic: write under a temporary name and rename on a clean finish (default), or into ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        width: int,
        height: int,
        *,
        codec: str = "libx264",
        pix_fmt: str | None = None,
        crf: int | None = 23,
        preset: str | None = "veryfast",
        tune: str | None = None,
        gop: int | None = None,
        threads: int | None = None,
        options: Mapping[str, str] | None = None,
        time_base: Fraction | None = None,
        container_format: str | None = None,
        container_options: Mapping[str, str] | None = None,
        atomic: bool = True,
    ) -> None:
        import av

        if codec not in CODECS:
            raise InputError(f"video codec '{codec}' is not one the writer supports; use one of {', '.join(CODECS)}")
        if width < 1 or height < 1:
            raise InputError(f"video size must be positive, got {width}x{height}")
        self.path = Path(path)
        self.pix_fmt = pix_fmt or CODECS[codec]
        chroma_420 = self.pix_fmt in ("yuv420p", "yuvj420p")
        #: ``(width, height)`` of the encoded stream (the frames' size rounded up to even for 4:2:0).
        self.size = (width + width % 2, height + height % 2) if chroma_420 else (width, height)
        self.frames_written = 0
        self._time_base = time_base
        self._stack = ExitStack()
        target = self._stack.enter_context(atomic_path(self.path)) if atomic else self.path
        fmt = _container_format(self.path, container_format, atomic)
        try:
            self._container = av.open(str(target), "w", format=fmt, options=dict(container_options or {}))
            self._stream = self._open_stream(codec, frame_rate(fps), gop, threads,
                                             self._encoder_options(codec, crf, preset, tune, options))
        except BaseException as err:
            self._abort(err)
            raise

    def _open_stream(self, codec: str, rate: Fraction, gop: int | None, threads: int | None, options: dict):
        stream = self._container.add_stream(codec, rate=rate)
        stream.width, stream.height = self.size
        stream.pix_fmt = self.pix_fmt
        if self._time_base is not None:
            stream.codec_context.time_base = self._time_base
            stream.time_base = self._time_base
        # One-second GOPs keep seeking cheap; one thread keeps the output the same everywhere.
        if gop is not None:
            stream.codec_context.gop_size = gop
        if threads is not None:
            stream.codec_context.thread_count = threads
        stream.options = options
        return stream

    @staticmethod
    def _encoder_options(codec: str, crf: int | None, preset: str | None, tune: str | None,
                         extra: Mapping[str, str] | None) -> dict:
        options = {}
        if codec == "libx264":
            named = {"crf": None if crf is None else str(crf), "preset": preset, "tune": tune}
            options = {k: v for k, v in named.items() if v is not None}
        return {**options, **dict(extra or {})}

    def write(self, image: np.ndarray, *, pts: int | None = None, format: str | None = None) -> None:
        """Encode one frame.

        Args:
            image: ``(H, W)`` grey or ``(H, W, 3)`` BGR uint8 at the writer's size (odd sides one short of
                :attr:`size` are padded); with ``format`` any layout PyAV reads, e.g. ``"rgb24"``, or
                ``"yuv420p"`` for an ``(3 H / 2, W)`` I420 buffer.
            pts: the frame's timestamp in ``time_base`` units; None: the encoder numbers frames.
        """
        import av

        if format is None:
            format = "gray" if image.ndim == 2 else "bgr24"
        if format != "yuv420p":
            image = self._fit(image)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=format)
        if pts is not None:
            frame.pts = pts
            if self._time_base is not None:
                frame.time_base = self._time_base
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def _fit(self, image: np.ndarray) -> np.ndarray:
        w, h = self.size
        dh, dw = h - image.shape[0], w - image.shape[1]
        if (dh, dw) == (0, 0):
            return image
        if dh not in (0, 1) or dw not in (0, 1):
            raise ValueError(f"{self.path}: frame of {image.shape[1]}x{image.shape[0]} given to a {w}x{h} video")
        pad = ((0, dh), (0, dw)) + ((0, 0),) * (image.ndim - 2)
        return np.pad(image, pad, mode="edge")

    def finish(self) -> None:
        """Flush the encoder, close the file and (atomic) rename it into place."""
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except BaseException as err:
            self._abort(err)
            raise
        self._stack.close()

    def abort(self) -> None:
        """Close without keeping anything (atomic); a non-atomic file keeps what was written."""
        self._abort(None)

    def _abort(self, err: BaseException | None) -> None:
        container = getattr(self, "_container", None)
        try:
            if container is not None:
                container.close()
        finally:
            err = err or RuntimeError("video writing aborted")
            # Hands the error to atomic_path, which then removes the temporary file instead of renaming it.
            self._stack.__exit__(type(err), err, err.__traceback__)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:  # flush the encoder only when the video is complete
            self.finish()
        else:
            self._abort(exc)
