"""Where overlaid frames go: an H.264 mp4, JSONL records (and events), an OpenCV window (the browser view is in ``server``).

Each sink runs in its own :class:`SinkRunner` thread behind a :class:`DropOldestQueue`, so a slow disk or
window can only lose its own frames (counted per sink), never stall inference. :meth:`Sink.open` runs in the
caller's thread before the stream starts, so a bad path or a missing display is reported up front.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from usvid.errors import InputError, MissingDependencyError
from usvid.outputs import check_output_file
from usvid.streaming.config import RECORD_SUFFIXES
from usvid.streaming.queues import Closed, DropOldestQueue
from usvid.streaming.results import OverlayFrame, StreamEvent

log = logging.getLogger(__name__)

_MS = Fraction(1, 1000)  # the recorder's time base: source timestamps in milliseconds


class Sink(ABC):
    """One output of the stream. ``write`` and ``event`` are called from the sink's own thread only."""

    name: str = "sink"
    #: Items the sink may fall behind by before its oldest ones are dropped.
    queue_size: int = 4
    #: Whether the sink also wants the "signal lost" frames shown while the source is away.
    wants_idle_frames: bool = False

    def open(self) -> None:
        """Check the sink can work (paths, display); called before the stream starts."""

    @abstractmethod
    def write(self, frame: OverlayFrame) -> None: ...

    def event(self, event: StreamEvent) -> None:
        """A state change of the stream (signal lost, reconnected, stopped)."""

    def close(self) -> None:
        """Finalise outputs; called once, after the last ``write``."""


class SinkRunner(threading.Thread):
    """Feeds one sink from a bounded queue in its own thread; ``offer`` never blocks."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(name=f"usvid-sink-{sink.name}", daemon=True)
        self.sink = sink
        self.queue: DropOldestQueue[OverlayFrame | StreamEvent] = DropOldestQueue(sink.queue_size)
        self.error: BaseException | None = None

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    def offer(self, item: OverlayFrame | StreamEvent) -> None:
        if self.error is None:
            try:
                self.queue.put(item)
            except Closed:
                pass  # the sink is finishing; late items (a last state change) are not needed

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get(timeout=0.5)
                if item is None:
                    if self.queue.closed:
                        break
                    continue
                if isinstance(item, StreamEvent):
                    self.sink.event(item)
                else:
                    self.sink.write(item)
        except BaseException as err:  # noqa: BLE001 - reported by the pipeline; other sinks go on
            log.error("sink %s failed: %s", self.sink.name, err)
            self.error = err
        finally:
            try:
                self.sink.close()
            except BaseException as err:  # noqa: BLE001
                log.error("closing sink %s failed: %s", self.sink.name, err)
                self.error = self.error or err

    def finish(self, timeout: float) -> None:
        """Let the sink drain what it has queued, then close it."""
        self.queue.close()
        self.join(timeout)
        if self.is_alive():
            log.warning("sink %s did not finish within %.1f s", self.sink.name, timeout)


def _prepare_output(path: Path, option: str) -> Path:
    """Check ``path`` can be written (not a folder, in a writable place), then create its folder."""
    path = check_output_file(path, option=option)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class Mp4Recorder(Sink):
    """H.264 mp4 of the overlaid frames with the source's timestamps (variable frame rate when frames drop).

    Written as *fragmented* mp4 (a self-contained fragment per keyframe interval), so the file is playable
    whatever ends the process: a clean stop finalises it, and even a hard kill leaves every finished fragment
    readable. Frames are padded to even sizes (4:2:0 needs them) and later frames of another size are
    resized to the first one's.
    """

    name = "record"
    queue_size = 8

    def __init__(self, path: Path, fps: float | None = None, keyframe_s: float = 2.0, crf: int = 23) -> None:
        self.path = Path(path)
        self.fps = fps or 30.0
        self.keyframe_s = keyframe_s
        self.crf = crf
        self.frames_written = 0
        self._writer = None
        self._t0: float | None = None
        self._last_pts = -1

    def open(self) -> None:
        check_output_file(self.path, option="--record")
        if self.path.suffix.lower() not in RECORD_SUFFIXES:
            raise InputError(f"--record {self.path}: expected an .mp4 file name")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _start(self, width: int, height: int) -> None:
        from usvid.video.writer import VideoWriter

        # Not atomic: the file grows in place so a hard kill keeps every finished fragment. flush_packets: each
        # fragment reaches the disk when it is complete, not when FFmpeg's buffer fills. zerolatency: no
        # lookahead or B-frames, so each frame is encoded and written as it arrives; one thread, so the
        # recorder does not compete with inference for the cores.
        self._writer = VideoWriter(
            self.path, self.fps, width, height, crf=self.crf, preset="veryfast", tune="zerolatency", threads=1,
            gop=max(1, round(self.fps * self.keyframe_s)), time_base=_MS,
            container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
            atomic=False,
        )

    def write(self, frame: OverlayFrame) -> None:
        import cv2

        if frame.result is None:
            return  # "signal lost" screens are for live views; the recording keeps the source's own frames
        image = frame.image if frame.recording is None else frame.recording  # no status line unless asked
        if self._writer is None:
            self._start(image.shape[1], image.shape[0])
        w, h = self._writer.size
        if not (image.shape[1] in (w, w - 1) and image.shape[0] in (h, h - 1)):
            # a later frame of another size (the source changed resolution): the first one's size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        pts_s = frame.result.frame.pts_seconds
        self._t0 = pts_s if self._t0 is None else self._t0
        pts = max(round((pts_s - self._t0) * 1000), self._last_pts + 1)
        self._last_pts = pts
        self._writer.write(image, pts=pts)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.finish()
        log.info("recorded %d frames to %s", self.frames_written, self.path)


def events_path(jsonl: Path) -> Path:
    """Where :class:`JsonlWriter` writes the stream's events: ``pred.jsonl`` -> ``pred.events.jsonl``."""
    jsonl = Path(jsonl)
    return jsonl.with_name(f"{jsonl.stem}.events{jsonl.suffix or '.jsonl'}")


class JsonlWriter(Sink):
    """One :class:`~usvid.inference.records.FrameRecord` a line in ``path`` (the keys ``usvid predict``
    writes), and the stream's events (start of detection, signal lost, reconnected, stopped) in their own
    file, :func:`events_path`, so every line of ``path`` is a frame. Both are flushed as written.

    ``video_id`` names the source in every record; ``raw`` adds the model's own values (smoothing on).
    """

    name = "jsonl"
    queue_size = 1024  # records are tiny: a deep queue rides out a slow disk without losing any

    def __init__(self, path: Path, video_id: str = "stream", raw: bool = False) -> None:
        self.path = Path(path)
        self.events_path = events_path(self.path)
        self.video_id = video_id
        self.raw = raw
        self.records = 0
        self._fh = None
        self._events = None

    def open(self) -> None:
        _prepare_output(self.path, "--jsonl")
        check_output_file(self.events_path, inputs=[self.path], option="--jsonl (its events file)")
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._events = open(self.events_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, frame: OverlayFrame) -> None:
        record = frame.record(self.video_id, self.raw)
        if record is None:
            return
        self._fh.write(json.dumps(record.to_json()) + "\n")
        self._fh.flush()
        self.records += 1

    def event(self, event: StreamEvent) -> None:
        self._events.write(json.dumps(event.record()) + "\n")
        self._events.flush()

    def close(self) -> None:
        for fh in (self._fh, self._events):
            if fh is not None:
                fh.close()
        self._fh = self._events = None


@dataclass
class _WindowState:
    name: str = "usvid stream"
    created: bool = False


def display_available() -> tuple[bool, str]:
    """Whether an OpenCV window can be shown here, and why not."""
    import cv2

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False, "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
    if gui and gui[0].split(":", 1)[1].strip().upper() == "NONE":
        return False, "this OpenCV build has no GUI support (opencv-python-headless); install opencv-python"
    return True, ""


class WindowSink(Sink):
    """An OpenCV window; ``q`` or Esc (or closing the window) stops the stream through ``request_stop``."""

    name = "window"
    queue_size = 1
    wants_idle_frames = True

    def __init__(self, request_stop: Callable[[str], None]) -> None:
        self.request_stop = request_stop
        self._state = _WindowState()

    def open(self) -> None:
        ok, why = display_available()
        if not ok:
            raise MissingDependencyError(f"--window: {why}; use --serve 127.0.0.1:8080 to watch in a browser")

    def write(self, frame: OverlayFrame) -> None:
        import cv2

        # All HighGUI calls stay on this one thread, as GTK and Cocoa require.
        cv2.imshow(self._state.name, frame.image)
        self._state.created = True
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.request_stop("window closed by key")
        elif cv2.getWindowProperty(self._state.name, cv2.WND_PROP_VISIBLE) < 1:
            self.request_stop("window closed")

    def close(self) -> None:
        if self._state.created:
            import cv2

            cv2.destroyWindow(self._state.name)
            cv2.waitKey(1)
