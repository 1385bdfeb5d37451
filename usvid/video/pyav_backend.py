"""PyAV (FFmpeg) backend: always installed, frame-accurate by presentation timestamp.

At open, the video stream is demuxed once without decoding: the sorted packet timestamps are the frame
index (frame ``i`` has the ``i``-th smallest pts), which counts frames from the content and lets random
access seek to the keyframe before a frame and decode forward to the exact pts (B-frames, VFR).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from usvid.errors import InputError, ProcessingError
from usvid.video.base import (
    DEFAULT_BATCH_SIZE,
    FrameBatch,
    GreyFrame,
    ReaderBase,
    VideoInfo,
    check_frame_size,
    full_range_lut,
    prefetch,
)
from usvid.video.sniff import header_frame_size

log = logging.getLogger(__name__)

_LUMA_FORMATS = {
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
    "nv12",
    "nv21",
    "yuv411p",
}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG
_LUT = full_range_lut()
_DECODE_AHEAD = 4  # frames decoded ahead of the caller (more only cost fresh FFmpeg buffers: slower)


def _open_container(path: Path):
    import av

    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as err:
        # FFmpeg refuses an oversized header with an unrelated errno (EBUSY for YUV4MPEG): say what it is.
        size = header_frame_size(path)
        if size is not None:
            check_frame_size(*size, path)
        raise InputError(
            f"{path}: not a readable video ({err}); check the file is complete and a video"
        ) from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: contains no video stream")
    return container


def luma_view(frame) -> tuple[np.ndarray, bool]:
    """``av.VideoFrame`` -> ``(H, W)`` uint8 grey and whether it is limited range (16..235).

    For YUV frames it is the Y plane itself, a view of the decoder's memory (no copy, no colour conversion:
    10x faster than ``to_ndarray(format="gray")``, same values), valid while ``frame`` is; other formats
    are converted.
    """
    fmt = frame.format.name
    if fmt in _LUMA_FORMATS or fmt == "gray":
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : frame.width]
        limited = not (fmt == "gray" or fmt.startswith("yuvj") or frame.color_range == _FULL_RANGE)
        return y, limited
    return frame.to_ndarray(format="gray"), False


def frame_to_grey(frame, out: np.ndarray | None = None, expand: bool = True) -> tuple[np.ndarray, bool]:
    """``av.VideoFrame`` -> ``(H, W)`` uint8 grey (written into ``out`` when given) and whether it is limited range.

    Limited-range luma is expanded to full range unless ``expand`` is False.
    """
    import cv2

    y, limited = luma_view(frame)
    if out is None:
        out = np.empty((frame.height, frame.width), np.uint8)
    if limited and expand:
        cv2.LUT(y, _LUT, dst=out)
        return out, False
    np.copyto(out, y)
    return out, limited


def _grey(decoded: Iterator[tuple[int, object, float]], raw_luma: bool) -> Iterator[GreyFrame]:
    """Decoded ``(index, av.VideoFrame, seconds)`` -> grey frames: the Y plane in place (no copy of the full
    frame; only limited-range luma not left raw is converted)."""
    import cv2

    full = None
    for i, frame, seconds in decoded:
        y, limited = luma_view(frame)
        if limited and not raw_luma:
            full = np.empty(y.shape, np.uint8) if full is None else full
            y, limited = cv2.LUT(y, _LUT, dst=full), False
        yield GreyFrame(i, seconds, y, limited)


def _ahead_threads() -> int:
    """Decoder threads beside a caller that works on every frame: every core but the caller's."""
    return max(1, (os.cpu_count() or 1) - 1)


class PyAVReader(ReaderBase):
    """A video file read with PyAV; see :class:`usvid.video.base.VideoReader`."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        """``threads``: FFmpeg decoding threads; 0 lets FFmpeg pick (frame threads, one per core + 1),
        except in :meth:`grey_frames`: it decodes ahead on a thread of its own, every core but the caller's.
        """
        self.path, self.threads = path, threads
        self._container = _open_container(path)
        try:
            self._stream = self._container.streams.video[0]
            self._build_index()
        except BaseException:
            self._container.close()
            raise
        self._dirty = True  # the index pass read to the end

    # -- index -------------------------------------------------------------------------------------
    def _build_index(self) -> None:
        import av

        stream = self._stream
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            raise InputError(f"{self.path}: unknown video codec; FFmpeg has no decoder for it")
        # Before reading any packet: FFmpeg zeroes a header size too large to decode, so read the header's own.
        size = (ctx.width, ctx.height) if ctx.width > 0 and ctx.height > 0 else header_frame_size(self.path)
        if size is not None:
            check_frame_size(*size, self.path)
        pts, key_pts = [], []
        self._packets = 0  # stays the number read so far when reading stops early
        self._packets_before: dict[int, int] = {}  # keyframe pts -> packets read before it (for segments)
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise InputError(
                        f"{self.path}: packets carry no timestamps; remux it (ffmpeg -i in -c copy out.mp4)"
                    )
                pts.append(stamp)
                self._packets = len(pts)
                if packet.is_keyframe:
                    key_pts.append(stamp)
                    self._packets_before.setdefault(stamp, len(pts) - 1)
        except av.error.FFmpegError as err:
            if not pts:
                raise InputError(f"{self.path}: cannot read video packets ({err})") from None
            log.warning(
                "%s: stopped reading after %d packets (%s); the file may be truncated",
                self.path,
                len(pts),
                err,
            )
        if not pts:
            raise InputError(f"{self.path}: the video stream has no frames")
        self._pts = np.unique(np.asarray(pts, dtype=np.int64))
        self._key_pts = np.unique(np.asarray(key_pts or [self._pts[0]], dtype=np.int64))
        tb = stream.time_base or Fraction(1, 1)
        self._time_base = float(tb)
        n = len(self._pts)
        span = (self._pts[-1] - self._pts[0]) * self._time_base
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float((n - 1) / span) if n > 1 and span > 0 else float(rate or 0.0) or 25.0
        self.info = VideoInfo(
            path=self.path,
            width=ctx.width,
            height=ctx.height,
            num_frames=n,
            fps=float(fps),
            duration_seconds=n / fps,
            codec=ctx.name,
            backend="pyav",
            num_frames_header=stream.frames or None,
            duration_header_seconds=self._declared_seconds(),
        )

    def _declared_seconds(self) -> float | None:
        """The stream's duration as the container states it (the container's own when the stream has none)."""
        stream = self._stream
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if self._container.duration:
            return self._container.duration / 1_000_000  # AV_TIME_BASE
        return None

    def _seconds(self, pts: int) -> float:
        return float((pts - self._pts[0]) * self._time_base)

    def _rewind(self, pts: int) -> Iterator:
        self._container.seek(int(pts), stream=self._stream, backward=True, any_frame=False)
        self._dirty = True
        return self._container.decode(self._stream)

    # -- decoding ----------------------------------------------------------------------------------
    def _convert(self, frame, grey: bool) -> np.ndarray:
        return frame_to_grey(frame)[0] if grey else frame.to_ndarray(format="rgb24")

    def _use_threads(self, threads: int) -> None:
        """Sequential decoding's threads; FFmpeg takes them only before the decoder first opens (random access
        first keeps its default, slice threads, for the reader's life)."""
        if self._stream.codec_context.is_open:
            return
        if threads != 1:
            self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads

    def _decode_all(self, threads: int | None = None) -> Iterator[tuple[int, object, float]]:
        """Every frame from the first, in presentation order: ``(index, av.VideoFrame, seconds)``.

        ``threads``: the decoder's (default: the reader's). The incomplete last packet of a file cut short is
        dropped, as FFmpeg's frame threads do, whatever the threads (fewer refuse it as invalid data).
        """
        import av

        self._use_threads(self.threads if threads is None else threads)
        if self._dirty:
            self._container.seek(int(self._pts[0]), stream=self._stream, backward=True, any_frame=False)
        self._dirty = True
        frames = self._frames(self._container.demux(self._stream))
        i = 0
        try:
            for frame in frames:
                self._check_size(frame, i)
                yield i, frame, self._seconds(frame.pts) if frame.pts is not None else i / self.info.fps
                i += 1
        except av.error.FFmpegError as err:
            raise ProcessingError(
                f"{self.path}: decoding failed after frame {i} ({err}); the file is corrupt"
            ) from None

    def _check_size(self, frame, index: int) -> None:
        """A frame of another size than the stream's (a mid-stream resolution change) is refused."""
        h, w = self.info.height, self.info.width
        if (frame.height, frame.width) != (h, w):
            raise ProcessingError(f"{self.path}: frame {index} is {frame.width}x{frame.height}, not {w}x{h}")

    def _frames(self, packets: Iterator, read: int = 0) -> Iterator:
        """The decoded frames of ``packets`` (what ``container.decode`` yields), see :meth:`_decode_all`;
        ``read``: the index's packets before the first of ``packets``."""
        import av

        for packet in packets:
            read += packet.size > 0 and not packet.is_discard  # counted as the index counts them
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                if read != self._packets:
                    raise
                log.info("%s: the last packet is incomplete (a file cut short); dropped", self.path)

    def batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, grey: bool = True, raw_luma: bool = False
    ) -> Iterator[FrameBatch]:
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        h, w = self.info.height, self.info.width
        shape = (batch_size, h, w) if grey else (batch_size, h, w, 3)
        buf, idx, stamps = np.empty(shape, np.uint8), [], []
        limited = False
        for i, frame, seconds in self._decode_all():
            k = len(idx)
            if grey:
                _, limited = frame_to_grey(frame, buf[k], expand=not raw_luma)
            else:
                buf[k] = frame.to_ndarray(format="rgb24")
            idx.append(i)
            stamps.append(seconds)
            if len(idx) == batch_size:
                yield self._wrap(buf, idx, stamps, limited)
                # A fresh buffer: the consumer may still hold the previous batch.
                buf, idx, stamps = np.empty(shape, np.uint8), [], []
        if idx:
            yield self._wrap(buf[: len(idx)], idx, stamps, limited)

    def grey_frames(self, *, raw_luma: bool = False) -> Iterator[GreyFrame]:
        if self.threads == 1:
            decoded = self._decode_all()
        else:
            # A thread that only decodes (FFmpeg works outside the GIL) while the caller works on the frames
            # before, a few frames ahead (bounded memory). Its decoder gets every core but the caller's: on
            # two cores a single-threaded one, which leaves the caller more CPU than FFmpeg's frame threads.
            decoded = prefetch(self._decode_all(self.threads or _ahead_threads()), depth=_DECODE_AHEAD)
        try:
            yield from _grey(decoded, raw_luma)
        finally:
            decoded.close()  # stops and joins the decode-ahead thread before anyone closes the container

    # -- segments: one video decoded at once from several keyframes ---------------------------------
    def keyframes(self) -> list[int]:
        """The frame indices of the keyframes (where decoding can start), ascending; at least ``[0]``."""
        return sorted({0, *np.searchsorted(self._pts, self._key_pts).tolist()})

    def seconds_of(self, index: int) -> float:
        """The time of frame ``index`` from the first frame, from the index (what decoding gives it)."""
        return self._seconds(self._pts[index])

    def grey_segment(self, start: int, stop: int | None, *, raw_luma: bool = False) -> Iterator[GreyFrame]:
        """Frames ``start..stop-1`` (``stop=None``: to the end) as :meth:`grey_frames` yields them, decoded on
        the calling thread by a single-threaded decoder on a container of its own, so segments of one video
        decode at once, one per thread. The first (``start=0``) takes the reader's container (an open costs
        some 2 ms), which then decodes nothing else meanwhile.

        ``start`` is a keyframe (:meth:`keyframes`). Every frame must be the index's frame of its number (its
        pts), so the frames are those of decoding from the first frame.

        Raises:
            ProcessingError: decoding fails, a frame is not the index's, or the video ends before ``stop``.
        """
        own = start > 0
        container = _open_container(self.path) if own else self._container
        stream = container.streams.video[0]
        if own:
            stream.codec_context.thread_count = 1
        else:
            self._use_threads(1)
            self._dirty = True
        decoded = self._segment_frames(container, stream, start, stop)
        try:
            yield from _grey(decoded, raw_luma)
        finally:
            decoded.close()
            if own:
                container.close()

    def _segment_frames(
        self, container, stream, start: int, stop: int | None
    ) -> Iterator[tuple[int, object, float]]:
        import av

        key = int(self._pts[start])
        if start > 0 and key not in self._packets_before:
            raise ProcessingError(
                f"{self.path}: frame {start} is not a keyframe; start a segment at one of keyframes()"
            )
        # The first segment seeks too, to the first frame: as decoding the whole video does after the index.
        container.seek(key, stream=stream, backward=True, any_frame=False)
        packets, read = container.demux(stream), 0
        if start > 0:
            packets, read = self._from_keyframe(packets, key), self._packets_before[key]
        i = start
        try:
            for frame in self._frames(packets, read):
                if i == start and frame.pts is not None and frame.pts < key:
                    continue  # an open GOP's leading frame: it belongs to the segment before
                if frame.pts is None or i >= len(self._pts) or frame.pts != self._pts[i]:
                    raise ProcessingError(
                        f"{self.path}: frame {i} decoded with pts {frame.pts}, not the index's "
                        f"{self._pts[i] if i < len(self._pts) else 'end'}; decode it from the first frame"
                    )
                self._check_size(frame, i)
                yield i, frame, self._seconds(frame.pts)
                i += 1
                if i == stop:
                    return
        except av.error.FFmpegError as err:
            raise ProcessingError(
                f"{self.path}: decoding failed after frame {i} ({err}); the file is corrupt"
            ) from None
        if stop is not None:
            raise ProcessingError(f"{self.path}: decoding ended at frame {i}, before frame {stop}")

    def _from_keyframe(self, packets: Iterator, key: int) -> Iterator:
        """``packets`` after a seek, checked to start at the keyframe of pts ``key`` (the index's count of
        packets read, which finds the last one, holds from there)."""
        first = True
        for packet in packets:
            if first and packet.size > 0 and not packet.is_discard:
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp != key:
                    raise ProcessingError(f"{self.path}: a seek to pts {key} landed at pts {stamp}")
                first = False
            yield packet

    @staticmethod
    def _wrap(buf: np.ndarray, idx: list[int], stamps: list[float], limited: bool = False) -> FrameBatch:
        data = (
            torch.from_numpy(buf[:, None])
            if buf.ndim == 3
            else torch.from_numpy(buf).permute(0, 3, 1, 2).contiguous()
        )
        return FrameBatch(
            data, torch.tensor(idx, dtype=torch.int64), torch.tensor(stamps, dtype=torch.float64), limited
        )

    def get_frames(self, indices: Sequence[int], *, grey: bool = True) -> FrameBatch:
        import av

        wanted = self.check_indices(indices)
        found: dict[int, np.ndarray] = {}
        decoder, position = None, -1
        try:
            for target in sorted(set(wanted)):
                target_pts = self._pts[target]
                key = self._key_pts[max(np.searchsorted(self._key_pts, target_pts, side="right") - 1, 0)]
                # Seek only when it saves work: going backwards, or a keyframe lies between here and the target.
                if decoder is None or position >= target or key > self._pts[position]:
                    decoder = self._rewind(key)
                found[target], decoder = self._decode_until(decoder, target, target_pts, grey)
                position = target
        except av.error.FFmpegError as err:
            raise ProcessingError(
                f"{self.path}: decoding failed while seeking ({err}); the file is corrupt"
            ) from None
        return FrameBatch.from_numpy(
            [found[i] for i in wanted], wanted, [self._seconds(self._pts[i]) for i in wanted]
        )

    def _decode_until(self, decoder, target: int, target_pts: int, grey: bool):
        for _ in range(2):
            for frame in decoder:
                if frame.pts is None:
                    continue
                if frame.pts == target_pts:
                    return self._convert(frame, grey), decoder
                if frame.pts > target_pts:
                    break
            # The seek landed past the target (an imprecise container index): start from the beginning.
            decoder = self._rewind(self._pts[0])
        raise ProcessingError(f"{self.path}: frame {target} (pts {target_pts}) could not be decoded")

    def close(self) -> None:
        self._container.close()
