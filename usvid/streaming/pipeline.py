"""The stream: capture -> preprocess + inference -> overlay -> sinks, each stage in its own thread.

Real-time policy: the capture thread puts every frame into a one-frame :class:`LatestSlot`; a frame the
inference thread has not taken by the time the next one arrives is dropped and counted, so inference always
works on the newest frame and no backlog (or memory) can build up. The same holds between inference and
overlay. Each sink has its own bounded drop-oldest queue, so a slow disk or viewer never stalls inference.
Recorded sources played as fast as possible (no ``--realtime``) are lossless instead: every frame is
processed.

The stages are separate classes: :class:`InferenceWorker` (scan region, model, smoothing, mask outlines),
:class:`OverlayWorker` (drawing, status line, "signal lost" screens, latency statistics) and
:class:`SinkFanout` (one :class:`~usvid.streaming.sinks.SinkRunner` per sink); :class:`StreamPipeline` wires
them to the capture thread and owns start, stop and the run's summary.

Shutdown (end of a recorded source, ``max_frames``, SIGINT/SIGTERM, :meth:`StreamPipeline.stop`): capture
stops, frames already captured run through, sinks drain their queues and finalise their files, and the run's
statistics are returned (and written to ``stats`` when asked). Every stage has a bounded wait, so shutdown
always ends; more signals during it are acknowledged but do not cut it short, since that would lose the
statistics and the recording's last fragment.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from usvid.boxes import MASK_THRESHOLD
from usvid.errors import ProcessingError, UsvidError
from usvid.inference.overlay import lesion_contours
from usvid.inference.smoothing import TemporalSmoother
from usvid.io import write_json_atomic
from usvid.streaming import overlay as stream_overlay
from usvid.streaming.config import StreamConfig, check_paths, source_path
from usvid.streaming.queues import LatestSlot
from usvid.streaming.results import FrameResult, OverlayFrame, StreamEvent
from usvid.streaming.scan_region import ScanRegionTracker, model_input
from usvid.streaming.server import BrowserView, display_source
from usvid.streaming.sinks import JsonlWriter, Mp4Recorder, Sink, SinkRunner, WindowSink, events_path
from usvid.streaming.sources import CapturedFrame, CaptureWorker, FrameReader, SourceState, make_reader
from usvid.streaming.stats import StatsSnapshot, StreamStats
from usvid.video.roi import ScanRegion

log = logging.getLogger(__name__)

#: How often the "signal lost" screen is re-sent to live views while the source is away.
IDLE_FRAME_INTERVAL_S = 0.5
SINK_DRAIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LiveStatus:
    """What the CLI's status line shows: the statistics so far and the latest answer."""

    stats: StatsSnapshot
    state: SourceState
    class_name: str | None
    probability: float | None


@dataclass(frozen=True)
class StreamSummary:
    """The end of a run: final statistics, why it stopped, and what was written where."""

    stats: StatsSnapshot
    stopped_by: str
    class_names: tuple[str, ...]
    outputs: dict[str, Path] = field(default_factory=dict)
    url: str | None = None


def stream_video_id(source: str) -> str:
    """The ``video_id`` of the stream's records: a local file's or folder's name as ``usvid predict`` names
    it (the stem), else the source as displayed (credentials removed)."""
    path = source_path(source)
    if path is not None and path.exists():
        return path.stem if path.is_file() else path.name
    return display_source(source)


def build_sinks(
    config: StreamConfig,
    request_stop: Callable[[str], None],
    stats: Callable[[], StatsSnapshot],
    fps: float | None,
) -> list[Sink]:
    """The sinks ``config`` asks for (not opened yet)."""
    sinks: list[Sink] = []
    if config.record is not None:
        sinks.append(Mp4Recorder(config.record, fps=fps))
    if config.jsonl is not None:
        sinks.append(JsonlWriter(config.jsonl, stream_video_id(config.source), raw=config.smoothing))
    if config.serve is not None:
        sinks.append(BrowserView.for_config(config, stats))
    if config.window:
        sinks.append(WindowSink(request_stop))
    return sinks


class SinkFanout:
    """Every sink behind its own :class:`SinkRunner`: open them all up front, hand each item to each, drain."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self.runners: list[SinkRunner] = []

    def open(self) -> None:
        """Open every sink (a bad path or missing display fails here); on failure close them all, re-raise."""
        try:
            for sink in self.sinks:
                sink.open()
        except BaseException:
            for sink in self.sinks:
                sink.close()
            raise
        self.runners = [SinkRunner(s) for s in self.sinks]
        for runner in self.runners:
            runner.start()

    def dispatch(self, item: OverlayFrame | StreamEvent, idle: bool = False) -> None:
        """Offer ``item`` to every sink (``idle`` "signal lost" screens only to those that want them)."""
        for runner in self.runners:
            if not idle or runner.sink.wants_idle_frames:
                runner.offer(item)

    def finish(self, timeout_s: float = SINK_DRAIN_TIMEOUT_S) -> None:
        for runner in self.runners:
            runner.finish(timeout_s)

    def dropped(self) -> dict[str, int]:
        return {r.sink.name: r.dropped for r in self.runners}

    def errors(self) -> list[BaseException]:
        return [r.error for r in self.runners if r.error is not None]


class InferenceWorker:
    """The inference stage: newest captured frame -> scan region -> model -> smoothing -> :class:`FrameResult`.

    ``on_roi(region, why)`` is called (from this stage's thread) whenever the scan region changes.
    """

    def __init__(
        self, config: StreamConfig, predictor, on_roi: Callable[[ScanRegion | None, str], None]
    ) -> None:
        self.config = config
        self.predictor = predictor
        self.class_names = tuple(predictor.info.class_names)
        self.on_roi = on_roi

    def run(self, frames: LatestSlot[CapturedFrame], results: LatestSlot[FrameResult]) -> None:
        """Take frames from ``frames`` until it closes, put results into ``results``; close it at the end."""
        smoother = TemporalSmoother(self.config.smoothing_tau_s) if self.config.smoothing else None
        tracker = ScanRegionTracker(self.config.region, on_change=self.on_roi)
        last_key = None
        try:
            while True:
                frame = frames.get(timeout=0.2)
                if frame is None:
                    if frames.closed:
                        return
                    continue
                key = (frame.segment, frame.size)
                if smoother is not None and key != last_key:
                    smoother.reset()  # a new connection or frame size: the old state describes another scene
                last_key = key
                results.put(self.infer(frame, tracker.update(frame.grey, frame.luma), smoother))
        finally:
            tracker.close()
            results.close()

    def infer(
        self, frame: CapturedFrame, region: ScanRegion | None, smoother: TemporalSmoother | None = None
    ) -> FrameResult:
        """The result of one frame seen through ``region`` (``None``: the whole frame)."""
        t0 = time.perf_counter()
        grey = model_input(frame.grey, region)
        pred = self.predictor.predict(torch.from_numpy(grey)[None, None], region)
        predict_ms = (time.perf_counter() - t0) * 1e3
        raw_probs = pred.probs[0].numpy().astype(np.float32)
        raw_box = pred.boxes[0]
        contours = self._contours(pred, frame, region) if raw_box is not None else ()
        probs, box = raw_probs, raw_box
        if smoother is not None:
            probs, box = smoother.update(frame.pts_seconds, raw_probs, raw_box)
        return FrameResult(
            frame, self.class_names, probs, box, raw_probs, raw_box, region, pred.timing.inference_ms,
            predict_ms, (t0 - frame.captured_at) * 1e3, contours,
        )

    def _contours(self, pred, frame: CapturedFrame, roi) -> tuple[np.ndarray, ...]:
        # Outlined in the inference thread: the overlay thread only draws.
        if pred.mask is None:
            return ()
        return lesion_contours(
            pred.mask[0], (frame.grey.shape[1], frame.grey.shape[0]), roi,
            getattr(self.predictor, "threshold", MASK_THRESHOLD),
            input_size=self.predictor.info.preprocess.size,
        )


class OverlayWorker:
    """The overlay stage: :class:`FrameResult` -> drawn :class:`OverlayFrame` -> ``dispatch``.

    Records capture-to-overlay latency in ``stats``; keeps the live views' status line fresh from
    ``snapshot``; while ``state()`` says the signal is lost, re-sends a dimmed last image to live views.
    """

    def __init__(
        self,
        config: StreamConfig,
        stats: StreamStats,
        snapshot: Callable[[], StatsSnapshot],
        state: Callable[[], SourceState],
        dispatch: Callable[..., None],
    ) -> None:
        self.config = config
        self.stats = stats
        self.snapshot = snapshot
        self.state = state
        self.dispatch = dispatch
        self.style = config.overlay_style
        # Without a region the tracker is still looking unless detection is off (then there is none to find).
        self.detecting = config.region.detects
        self.latest: FrameResult | None = None
        self._last_image: np.ndarray | None = None
        self._idle_at = 0.0
        self._status_line, self._status_at = "", 0.0

    def run(self, results: LatestSlot[FrameResult]) -> None:
        """Draw and dispatch every result until ``results`` closes."""
        while True:
            result = results.get(timeout=0.1)
            now = time.perf_counter()
            if result is None:
                if results.closed:
                    return
                self._idle(now)
                continue
            self.dispatch(self.render(result, now))

    def render(self, result: FrameResult, now: float) -> OverlayFrame:
        """The overlaid frame of ``result`` (status line on the live image), latency recorded."""
        if now - self._status_at >= 0.5:
            snap = self.snapshot()
            self._status_line = stream_overlay.status_text(
                snap.recent_fps, snap.recent_latency_p50_ms, snap.recent_latency_p95_ms, snap.dropped
            )
            self._status_at = now
        clean = stream_overlay.render_result(result, self.style, detecting=self.detecting)
        live = clean.copy()
        if self._status_line:
            size = (result.frame.grey.shape[1], result.frame.grey.shape[0])
            stream_overlay.draw_status(live, self._status_line, size)
        done = time.perf_counter()
        latency_ms = (done - result.frame.captured_at) * 1e3
        self.stats.record(latency_ms, result.forward_ms, done)
        self.latest = result
        self._last_image = clean  # the "signal lost" screen dims this: de-identified, like every frame shown
        recording = live if self.config.record_status else clean
        return OverlayFrame(live, result, latency_ms, SourceState.LIVE, recording)

    def _idle(self, now: float) -> None:
        state = self.state()
        if state is SourceState.SIGNAL_LOST and self._last_image is not None and now - self._idle_at >= \
                IDLE_FRAME_INTERVAL_S:
            self._idle_at = now
            lost = OverlayFrame(stream_overlay.draw_signal_lost(self._last_image), None, 0.0, state)
            self.dispatch(lost, idle=True)


class StreamPipeline:
    """One stream run. ``predictor`` follows :class:`usvid.inference.Predictor` (``predict(frames, roi)``).

    Use :meth:`run` (blocking, handles SIGINT/SIGTERM), or :meth:`start` + :meth:`wait` / :meth:`stop` from
    another thread. ``reader`` and ``sinks`` default to what ``config`` names.
    """

    def __init__(
        self,
        config: StreamConfig,
        predictor,
        *,
        reader: FrameReader | None = None,
        sinks: list[Sink] | None = None,
    ) -> None:
        self.config = config
        self.predictor = predictor
        self.class_names = tuple(predictor.info.class_names)
        self.reader = reader or make_reader(config)
        self.stats = StreamStats()
        self._stop = threading.Event()
        self._stop_reason = "end of source"
        self._sinks_given = sinks
        self._fanout = SinkFanout([])
        self._frames: LatestSlot[CapturedFrame] = LatestSlot()
        self._results: LatestSlot[FrameResult] = LatestSlot()
        self._state = SourceState.CONNECTING
        self._signal_lost_events = 0
        self._inference = InferenceWorker(config, predictor, self._on_roi)
        self._overlay = OverlayWorker(config, self.stats, self.snapshot, lambda: self._state, self._dispatch)
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._capture: CaptureWorker | None = None
        self._signals = 0

    @property
    def sinks(self) -> list[Sink]:
        return self._fanout.sinks

    # ---------------------------------------------------------------- public API
    def start(self) -> None:
        """Check the output paths, open the source and the sinks (clear errors here), then start every thread."""
        check_paths(self.config)
        self.reader.open()
        lossless = not self.reader.live and not self.config.realtime
        self._frames = LatestSlot(lossless=lossless)
        self._results = LatestSlot(lossless=lossless)
        sinks = (
            self._sinks_given
            if self._sinks_given is not None
            else build_sinks(self.config, self.stop, self.snapshot, self.reader.fps or self.config.fps)
        )
        self._fanout = SinkFanout(sinks)
        try:
            self._fanout.open()
        except BaseException:
            self.reader.close()
            raise
        self._capture = CaptureWorker(
            self.reader, self.config, self._frames.put, self._on_source_state, self._stop
        )
        stages = (
            ("usvid-infer", lambda: self._inference.run(self._frames, self._results)),
            ("usvid-overlay", lambda: self._overlay.run(self._results)),
        )
        self._threads = [
            threading.Thread(target=self._guard, args=(loop,), name=name, daemon=True) for name, loop in stages
        ]
        for t in self._threads:
            t.start()
        self._capture.start()

    def stop(self, reason: str = "stopped") -> None:
        """Ask the stream to stop (thread-safe; the first reason wins)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            self._frames.close()

    def wait(
        self, on_status: Callable[[LiveStatus], None] | None = None, poll_s: float = 0.25
    ) -> StreamSummary:
        """Block until the stream ends, calling ``on_status`` every ``poll_s``; then finalise everything."""
        if not self._threads:
            raise RuntimeError("start() the pipeline before waiting for it")
        overlay_thread = self._threads[1]
        while overlay_thread.is_alive():
            overlay_thread.join(poll_s)
            if on_status is not None:
                on_status(self.live_status())
        return self._finish()

    def run(
        self,
        on_status: Callable[[LiveStatus], None] | None = None,
        on_started: Callable[[StreamPipeline], None] | None = None,
    ) -> StreamSummary:
        """:meth:`start`, then :meth:`wait`; SIGINT and SIGTERM stop it cleanly, and later ones are only
        acknowledged until the outputs are finalised."""
        restore = self._install_signal_handlers()
        try:
            self.start()
            if on_started is not None:
                on_started(self)
            return self.wait(on_status)
        finally:
            restore()

    @property
    def url(self) -> str | None:
        """The browser view's address, once started with ``serve``."""
        view = next((s for s in self.sinks if isinstance(s, BrowserView)), None)
        return view.url if view is not None else None

    @property
    def dropped(self) -> int:
        return self._frames.dropped + self._results.dropped

    def snapshot(self) -> StatsSnapshot:
        cap = self._capture
        span = 0.0
        if cap is not None and cap.first_capture_at is not None and cap.last_capture_at is not None:
            span = cap.last_capture_at - cap.first_capture_at
        return self.stats.snapshot(
            captured=cap.captured if cap else 0,
            dropped=self.dropped,
            capture_span_s=span,
            sink_dropped=self._fanout.dropped(),
            reconnects=cap.reconnects if cap else 0,
            signal_lost_events=self._signal_lost_events,
            state=self._state.value,
        )

    def live_status(self) -> LiveStatus:
        latest = self._overlay.latest
        return LiveStatus(
            self.snapshot(),
            self._state,
            latest.class_name if latest else None,
            latest.probability if latest else None,
        )

    # ---------------------------------------------------------------- stages
    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as err:  # noqa: BLE001 - re-raised by wait() in the caller's thread
            log.debug("stream stage failed", exc_info=True)
            self._errors.append(err)
            self.stop("error")
            self._results.close()

    def _dispatch(self, item: OverlayFrame | StreamEvent, idle: bool = False) -> None:
        self._fanout.dispatch(item, idle)

    # ---------------------------------------------------------------- callbacks and shutdown
    def _on_source_state(self, state: SourceState, message: str) -> None:
        previous, self._state = self._state, state
        if state is SourceState.SIGNAL_LOST:
            self._signal_lost_events += 1
            log.warning("signal lost from %s: %s", display_source(self.config.source), message)
            self._dispatch(StreamEvent("signal_lost", message))
        elif state is SourceState.LIVE and previous is SourceState.SIGNAL_LOST:
            log.info("signal back from %s: %s", display_source(self.config.source), message)
            self._dispatch(StreamEvent("reconnected", message))
        elif state is SourceState.ENDED:
            self._frames.close()  # lets inference finish the frame in hand, then the stages wind down

    def _on_roi(self, region: ScanRegion | None, why: str) -> None:
        box = None if region is None else region.box
        log.info("scan region %s: %s", why, box)
        self._dispatch(StreamEvent("roi", f"{why}: {box}"))

    def _finish(self) -> StreamSummary:
        if (
            self.config.max_frames is not None
            and self._capture is not None
            and self._capture.captured >= self.config.max_frames
            and not self._stop.is_set()
        ):
            self._stop_reason = "max frames"
        try:
            self._wind_down()
        finally:
            # Even if winding down was cut short, what was measured is kept.
            snap = self.snapshot()
            self._write_stats(snap)
        self._raise_errors()
        return StreamSummary(snap, self._stop_reason, self.class_names, self._outputs(), self.url)

    def _raise_errors(self) -> None:
        errors = self._errors + [
            e for e in (self._capture.error if self._capture else None,) if e is not None
        ]
        sink_errors = self._fanout.errors()
        if errors:
            err = errors[0]
            if isinstance(err, UsvidError):
                raise err
            raise ProcessingError(f"stream failed: {type(err).__name__}: {err}") from err
        if sink_errors:
            raise ProcessingError(f"a sink failed: {type(sink_errors[0]).__name__}: {sink_errors[0]}")

    def _outputs(self) -> dict[str, Path]:
        jsonl = self.config.jsonl
        named = (
            ("record", self.config.record),
            ("jsonl", jsonl),
            ("events", None if jsonl is None else events_path(jsonl)),
            ("stats", self.config.stats),
        )
        return {name: path for name, path in named if path is not None}

    def _wind_down(self) -> None:
        """Stop capture, let the stages run out, then let every sink drain and finalise its file."""
        self._stop.set()
        self._frames.close()
        if self._capture is not None:
            # A live source may be stuck reconnecting (opening blocks up to open_timeout_s): wait a bounded
            # time only; the capture thread is a daemon and delivers nothing once the frame slot is closed.
            self._capture.join(self.config.read_timeout_s + 2.0)
        for t in self._threads:
            t.join(5.0)
        self._dispatch(StreamEvent("stopped", self._stop_reason))
        self._fanout.finish(SINK_DRAIN_TIMEOUT_S)

    def _write_stats(self, snap: StatsSnapshot) -> None:
        if self.config.stats is None:
            return
        write_json_atomic(
            self.config.stats,
            {
                **snap.to_dict(),
                "stopped_by": self._stop_reason,
                "source": display_source(self.config.source),  # never credentials in a file
                "model": str(self.config.model),
                "class_names": list(self.class_names),
            },
        )

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, _frame) -> None:
            name = signal.Signals(signum).name
            self._signals += 1
            if self._signals == 1:
                self.stop(f"signal {name}")
                return
            # Aborting here lost stats.json and the recording's last fragment; every wait in the shutdown is
            # bounded, so finishing is only a few seconds away.
            log.warning("%s again: still finishing the outputs, exiting as soon as they are written", name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def run_stream(
    config: StreamConfig,
    *,
    on_status: Callable[[LiveStatus], None] | None = None,
    on_started: Callable[[StreamPipeline], None] | None = None,
) -> StreamSummary:
    """Load ``config.model`` and run the stream until the source ends, ``max_frames``, or SIGINT/SIGTERM."""
    from usvid.inference.predictor import load_predictor

    check_paths(config)  # an output that is an input, a folder or unwritable fails before anything opens
    reader = make_reader(config)  # a missing file or unknown scheme fails here, before the model loads
    predictor = load_predictor(config.model, config.backend, config.device, threshold=config.threshold)
    if hasattr(predictor, "warmup"):
        predictor.warmup()  # lazy initialisation would otherwise land in the first frames' latency
    return StreamPipeline(config, predictor, reader=reader).run(on_status=on_status, on_started=on_started)
