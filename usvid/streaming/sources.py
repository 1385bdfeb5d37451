"""Frame sources of a stream and the capture thread that reads them.

Kinds (chosen from the SOURCE string by :func:`classify_source`):
* ``device``: a V4L2/UVC capture device (``/dev/videoN``, e.g. a capture card on the scanner's video output);
* ``network``: RTSP, UDP/RTP MPEG-TS, SRT, TCP, HTTP(S) through PyAV (FFmpeg);
* ``file``: a recorded video, at its native rate (``realtime``) or as fast as possible;
* ``folder`` / ``dicom``: a folder of frame images or a DICOM cine, read by :func:`usvid.video.open_video`.

Device and network sources are *live*: when one drops, the capture thread reports "signal lost" and
reconnects with exponential backoff until it returns or the stream stops. Every source is opened once in
the caller's thread first (:meth:`FrameReader.open`), so a source that never opens is a clear error within
``open_timeout_s`` instead of a silent retry loop.

Frames carry a continuous timeline (``pts_seconds``): the source's own timestamps within one connection,
shifted so that it never runs backwards across reconnections. The recorder writes these timestamps.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import numpy as np

from usvid.data.sources import find_videos, video_kind
from usvid.errors import InputError
from usvid.streaming.config import StreamConfig
from usvid.streaming.queues import Closed

log = logging.getLogger(__name__)

SourceKind = Literal["device", "network", "file", "folder", "dicom"]
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "srt", "tcp", "http", "https")
DEFAULT_FPS = 30.0


class SourceState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    SIGNAL_LOST = "signal lost"
    ENDED = "ended"


class DecodedFrame(NamedTuple):
    """One frame as a reader decoded it.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR.
        grey: ``(H, W)`` uint8 full-range grey, what the model sees (limited-range luma expanded exactly as
            ``usvid extract`` expands it for the store).
        pts: seconds on the source's timeline, ``None`` when it carries none.
        luma: ``(H, W)`` uint8, the decoded limited-range luma (16..235) when the source is limited range,
            else ``None`` (then ``grey`` is the luma). The scan-region detector takes its statistics of this,
            as extraction does: statistics of the expanded grey draw a different region.
    """

    image: np.ndarray
    grey: np.ndarray
    pts: float | None
    luma: np.ndarray | None = None


@dataclass(frozen=True)
class CapturedFrame:
    """One frame as it left the source.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR (OpenCV order, as the shared overlay draws), the original frame.
        grey: ``(H, W)`` uint8, what the model sees.
        index: 0-based count of frames captured in this run (dropped ones included).
        pts_seconds: time on the source's continuous timeline.
        captured_at: ``time.perf_counter()`` when the frame was decoded; latency is measured from here.
        segment: connection number (0 for the first, +1 per reconnection).
        luma: the decoded limited-range luma the scan-region detector reads (see :class:`DecodedFrame`), or
            ``None`` when ``grey`` is the luma.
    """

    image: np.ndarray
    grey: np.ndarray
    index: int
    pts_seconds: float
    captured_at: float
    segment: int = 0
    luma: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.image.shape[1], self.image.shape[0]

    def __repr__(self) -> str:
        return f"CapturedFrame(index={self.index}, size={self.size}, pts_seconds={self.pts_seconds:.3f})"


class SourceLost(Exception):
    """A live source stopped delivering (network silent, device unplugged, stream ended)."""


def classify_source(spec: str) -> SourceKind:
    """Which kind of source ``spec`` names; a missing file or an unknown scheme is an :class:`InputError`."""
    scheme = urlsplit(spec).scheme.lower()
    if scheme in NETWORK_SCHEMES:
        return "network"
    if spec.startswith("/dev/video") or scheme == "v4l2":
        return "device"
    if len(scheme) > 1 and "://" in spec:
        raise InputError(
            f"source '{spec}': unsupported URL scheme '{scheme}'; use one of {', '.join(NETWORK_SCHEMES)}"
        )
    path = Path(spec)
    if not path.exists():
        raise InputError(
            f"source '{spec}' does not exist; give a /dev/videoN device, a network URL "
            f"({', '.join(NETWORK_SCHEMES[:5])}, ...), a video file, a frame folder or a DICOM file"
        )
    # A recorded source means what it means to `usvid extract` and `usvid predict`, but a stream plays one.
    kind = video_kind(path)
    if kind is None and path.is_dir():
        videos, _ = find_videos(path)
        example = f" such as {videos[0]}" if videos else ""
        raise InputError(f"source '{spec}' is a folder without frame images; a stream plays one video: give one "
                         f"video file{example}, a frame folder or a DICOM file (`usvid predict` reads whole folders)")
    # Anything else that exists is left to FFmpeg, which reads far more than the listed suffixes.
    return kind or "file"


class FrameReader(ABC):
    """One source's decoder: :meth:`open` (called again to reconnect), :meth:`frames`, :meth:`close`."""

    kind: SourceKind
    live: bool

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.fps: float | None = None

    @abstractmethod
    def open(self) -> None:
        """Open (or reopen) the source; raise :class:`InputError` with the reason when it cannot."""

    @abstractmethod
    def frames(self) -> Iterator[DecodedFrame | tuple[np.ndarray, np.ndarray, float | None]]:
        """Yield :class:`DecodedFrame` (or plain ``(bgr, grey, pts)`` triples, for full-range sources).

        Ends when a recorded source is exhausted; raises :class:`SourceLost` when a live source drops.
        """

    @abstractmethod
    def close(self) -> None: ...


class PyAVReader(FrameReader):
    """Device, network and file sources through PyAV."""

    def __init__(
        self, spec: str, kind: SourceKind, open_timeout_s: float, read_timeout_s: float, low_latency: bool
    ) -> None:
        super().__init__(spec)
        self.kind = kind
        self.live = kind in ("device", "network")
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._low_latency = low_latency
        self._container = None

    def _open_args(self) -> tuple[str, dict]:
        if self.kind == "device":
            return self.spec.removeprefix("v4l2://"), {"format": "v4l2"}
        if self.kind == "file":
            return self.spec, {}
        scheme = urlsplit(self.spec).scheme.lower()
        # Small probe and no demuxer buffering: a live view wants the first frame now, not a perfect analysis.
        options = {
            "fflags": "nobuffer",
            "flags": "low_delay",
            "probesize": "500000",
            "analyzeduration": "500000",
        }
        if scheme == "rtsp":
            options["rtsp_transport"] = "tcp"  # no packet loss on a local network; UDP RTSP tears frames
        if scheme in ("udp", "rtp"):
            options["overrun_nonfatal"] = "1"
            options["fifo_size"] = "1000000"
        return self.spec, {"options": options, "timeout": (self._open_timeout_s, self._read_timeout_s)}

    def open(self) -> None:
        import av

        self.close()
        url, kwargs = self._open_args()
        if self.kind == "device" and not Path(url).exists():
            raise InputError(
                f"capture device {url} does not exist; list devices with `ls /dev/video*` "
                "(is the capture card plugged in and its driver loaded?)"
            )
        t0 = time.perf_counter()
        try:
            container = av.open(url, **kwargs)
        except Exception as err:  # noqa: BLE001 - FFmpeg raises many types; all mean "cannot open"
            waited = time.perf_counter() - t0
            raise InputError(self._open_failure(err, waited)) from None
        if not container.streams.video:
            container.close()
            raise InputError(f"source '{self.spec}' has no video stream")
        stream = container.streams.video[0]
        # Frame threading holds back one frame per thread: fine for throughput, not for a live view.
        stream.thread_type = "SLICE" if self._low_latency else "AUTO"
        self.fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        self._container = container

    def _open_failure(self, err: Exception, waited: float) -> str:
        what = {"device": "capture device", "network": "network source", "file": "video file"}[self.kind]
        reason = "no data arrived" if _is_timeout(err) else f"{type(err).__name__}: {err}"
        hint = {
            "device": "check the device is not busy in another program and you may read it (group 'video')",
            "network": "check the sender is running and the URL, port and protocol are right",
            "file": "check it is a playable video (ffprobe it)",
        }[self.kind]
        return f"could not open {what} '{self.spec}' (gave up after {waited:.1f} s; {reason}); {hint}"

    def frames(self) -> Iterator[DecodedFrame]:
        import av

        from usvid.video.pyav_backend import frame_to_grey, luma_view

        if self._container is None:
            raise RuntimeError("open() the reader first")
        try:
            for frame in self._container.decode(video=0):
                luma, limited = luma_view(frame)
                luma = np.array(luma) if limited else None  # a copy: the view dies with the decoder's frame
                grey, _ = frame_to_grey(frame)
                yield DecodedFrame(frame.to_ndarray(format="bgr24"), grey, frame.time, luma)
        except (av.error.FFmpegError, OSError) as err:
            if not self.live:
                raise InputError(f"{self.spec}: decoding failed ({type(err).__name__}: {err})") from None
            if _is_timeout(err):
                raise SourceLost(f"no data for {self._read_timeout_s:g} s") from None
            raise SourceLost(f"{type(err).__name__}: {err}") from None
        if self.live:
            raise SourceLost("the stream ended")

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not mask the real error
                log.debug("closing %s failed", self.spec, exc_info=True)
            self._container = None


def _is_timeout(err: Exception) -> bool:
    """PyAV's ``timeout`` interrupts a blocking read with FFmpeg's AVERROR_EXIT ("Immediate exit requested")."""
    import av

    return isinstance(err, av.error.ExitError)


class VideoLayerReader(FrameReader):
    """Image folders and DICOM cines through :func:`usvid.video.open_video` (recorded, never live).

    Decodes a few frames at a time (the video layer holds at most one batch) with their own timestamps.
    """

    live = False

    def __init__(self, spec: str, kind: SourceKind, fps: float | None, batch: int = 4) -> None:
        super().__init__(spec)
        self.kind = kind
        self._fps_override = fps
        self._batch = batch
        self._reader = None

    def open(self) -> None:
        from usvid.video.reader import open_video

        self.close()
        options = {"fps": self._fps_override} if self.kind == "folder" and self._fps_override else {}
        self._reader = open_video(self.spec, **options)
        self.fps = self._fps_override or self._reader.info.fps or DEFAULT_FPS

    def frames(self) -> Iterator[DecodedFrame]:
        import cv2

        from usvid.video.reader import rgb_to_grey

        step = 1.0 / self.fps
        for batch in self._reader.batches(self._batch, grey=False):
            for chw, index in zip(batch.data.numpy(), batch.indices.tolist(), strict=True):
                rgb = np.ascontiguousarray(chw.transpose(1, 2, 0))
                # Timestamps from the frame rate, so a --fps override of a folder or cine takes effect.
                yield DecodedFrame(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), rgb_to_grey(rgb), index * step)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None


def make_reader(config: StreamConfig) -> FrameReader:
    """The reader for ``config.source`` (not opened yet)."""
    kind = classify_source(config.source)
    if kind in ("folder", "dicom"):
        return VideoLayerReader(config.source, kind, config.fps)
    low_latency = kind != "file" or config.realtime
    return PyAVReader(config.source, kind, config.open_timeout_s, config.read_timeout_s, low_latency)


class Timeline:
    """Maps each connection's timestamps onto one clock that never runs backwards."""

    def __init__(self, fps: float | None) -> None:
        self._period = 1.0 / (fps or DEFAULT_FPS)
        self._offset = 0.0
        self._first: float | None = None
        self._last_out: float | None = None
        self._last_wall: float | None = None
        self._count = 0

    def new_segment(self, fps: float | None = None) -> None:
        """A reconnection: later frames start after the last one plus the wall time spent without signal."""
        if fps:
            self._period = 1.0 / fps
        if self._last_out is not None:
            gap = time.perf_counter() - self._last_wall if self._last_wall is not None else self._period
            self._offset = self._last_out + max(gap, self._period)
        self._first = None
        self._count = 0

    def map(self, pts: float | None) -> float:
        raw = pts if pts is not None else self._count * self._period
        if self._first is None:
            self._first = raw
        out = self._offset + raw - self._first
        if self._last_out is not None and out <= self._last_out:
            # Timestamps jumped back or repeated inside a connection: keep order with a nominal step.
            self._offset += self._last_out + self._period - out
            out = self._last_out + self._period
        self._last_out = out
        self._last_wall = time.perf_counter()
        self._count += 1
        return out


class CaptureWorker(threading.Thread):
    """Reads an opened :class:`FrameReader` and hands each :class:`CapturedFrame` to ``deliver``.

    Paces recorded sources at their native rate when ``realtime``; reconnects live sources with
    exponential backoff, reporting every state change through ``on_state(state, message)``.
    ``deliver`` may block (lossless mode) and raises to stop the worker.
    """

    def __init__(
        self,
        reader: FrameReader,
        config: StreamConfig,
        deliver: Callable[[CapturedFrame], None],
        on_state: Callable[[SourceState, str], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name="usvid-capture", daemon=True)
        self.reader = reader
        self.config = config
        self.deliver = deliver
        self.on_state = on_state
        self.stop_event = stop
        self.captured = 0
        self.reconnects = 0
        self.first_capture_at: float | None = None
        self.last_capture_at: float | None = None
        self.error: BaseException | None = None
        self._timeline = Timeline(reader.fps or config.fps)

    def run(self) -> None:
        try:
            self._run()
        except Closed:
            pass  # the pipeline is shutting down and no longer takes frames
        except BaseException as err:  # noqa: BLE001 - handed to the pipeline, which re-raises it
            self.error = err
        finally:
            self.reader.close()
            self.on_state(SourceState.ENDED, "capture stopped")

    def _run(self) -> None:
        self.on_state(SourceState.LIVE, f"{self.reader.kind} source open")
        while not self.stop_event.is_set():
            try:
                self._pump()
            except SourceLost as lost:
                if self.stop_event.is_set():
                    return
                self.on_state(SourceState.SIGNAL_LOST, str(lost))
                if not self._reconnect():
                    return
                continue
            return  # a recorded source ended, or max_frames reached

    def _pump(self) -> None:
        pace = self.config.realtime and not self.reader.live
        wall0 = pts0 = None
        for decoded in self.reader.frames():
            if self.stop_event.is_set():
                return
            bgr, grey, pts, luma = DecodedFrame(*decoded)
            t = self._timeline.map(pts)
            if pace:
                wall0, pts0 = (time.perf_counter(), t) if wall0 is None else (wall0, pts0)
                delay = wall0 + (t - pts0) - time.perf_counter()
                if delay > 0 and self.stop_event.wait(delay):
                    return
            now = time.perf_counter()
            frame = CapturedFrame(bgr, grey, self.captured, t, now, self.reconnects, luma)
            self.first_capture_at = self.first_capture_at or now
            self.last_capture_at = now
            self.captured += 1
            self.deliver(frame)
            if self.config.max_frames is not None and self.captured >= self.config.max_frames:
                return

    def _reconnect(self) -> bool:
        """Retry opening the live source with exponential backoff; ``False`` once the stream is stopping."""
        delay = self.config.reconnect_initial_s
        self.reader.close()
        while not self.stop_event.wait(delay):
            try:
                self.reader.open()
            except InputError as err:
                log.info("reconnect to %s failed (%s); next try in %.2f s", self.reader.spec, err, delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
                continue
            self.reconnects += 1
            self._timeline.new_segment(self.reader.fps)
            self.on_state(SourceState.LIVE, f"reconnected (attempt after {delay:.2f} s backoff)")
            return True
        return False
