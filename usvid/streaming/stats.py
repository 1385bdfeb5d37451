"""Run statistics of a stream: capture-to-overlay latency percentiles, fps, dropped frames.

Percentiles come from a log-spaced histogram (bins 1% wide), so memory stays constant however long a live
stream runs, and a reported percentile is within 1% of the exact one. A short window of recent frames
drives the live status line.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np


class LatencyHistogram:
    """Constant-memory distribution of durations in ms, ``lo_ms`` to ``hi_ms``, bins ``ratio - 1`` wide."""

    def __init__(self, lo_ms: float = 0.01, hi_ms: float = 1e5, ratio: float = 1.01) -> None:
        self._lo = lo_ms
        self._log_ratio = math.log(ratio)
        self._counts = np.zeros(int(math.ceil(math.log(hi_ms / lo_ms) / self._log_ratio)) + 1, np.int64)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value_ms: float) -> None:
        value_ms = max(float(value_ms), 0.0)
        idx = 0 if value_ms <= self._lo else int(math.log(value_ms / self._lo) / self._log_ratio) + 1
        self._counts[min(idx, len(self._counts) - 1)] += 1
        self.count += 1
        self.total += value_ms
        self.min = min(self.min, value_ms)
        self.max = max(self.max, value_ms)

    def percentile(self, q: float) -> float:
        """Nearest-rank ``q``-th percentile (``0 < q <= 100``); ``nan`` when empty."""
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(q / 100.0 * self.count))
        idx = int(np.searchsorted(np.cumsum(self._counts), rank))
        # Geometric middle of the bin, clipped to what was seen, so a constant input reports itself exactly.
        mid = self._lo * math.exp((idx - 0.5) * self._log_ratio) if idx else self._lo
        return float(min(max(mid, self.min), self.max))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


@dataclass(frozen=True)
class Percentiles:
    """Summary of a duration distribution, in milliseconds (``None`` before the first frame)."""

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None

    @classmethod
    def of(cls, hist: LatencyHistogram) -> Percentiles:
        def r(v: float) -> float | None:
            return None if math.isnan(v) or math.isinf(v) else round(v, 3)

        return cls(
            r(hist.percentile(50)), r(hist.percentile(95)), r(hist.percentile(99)), r(hist.mean), r(hist.max)
        )


@dataclass(frozen=True)
class StatsSnapshot:
    """What a stream has done so far; ``to_dict`` is the STATS.json layout.

    ``frames``: frames inferred and overlaid. ``captured``: frames read from the source. ``dropped``: captured
    frames skipped by the newest-frame policy (never inferred). ``fps``: sustained rate of overlaid frames.
    ``latency_ms``: capture to overlay ready. ``forward_ms``: the network forward alone (as the predictor
    timed it). ``overhead_ms``: latency minus forward, i.e. everything the pipeline adds (queues, decode
    hand-off, preprocessing, post-processing, smoothing, drawing). ``recent_*``: the last ``recent_frames``
    overlaid frames only (at most :data:`RECENT_FRAMES`), what the live status line, the overlay and the
    browser view show.
    """

    frames: int
    captured: int
    dropped: int
    fps: float
    capture_fps: float
    duration_s: float
    latency_ms: Percentiles
    forward_ms: Percentiles
    overhead_ms: Percentiles
    recent_fps: float
    recent_latency_p50_ms: float | None
    recent_latency_p95_ms: float | None
    sink_dropped: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    signal_lost_events: int = 0
    state: str = "starting"
    recent_frames: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


#: Overlaid frames the ``recent_*`` figures cover: about 4 s at 30 fps, long enough for a steady p95, short
#: enough to follow a change of load.
RECENT_FRAMES = 120


class StreamStats:
    """Thread-safe accumulator; the overlay thread records frames, anyone may take a snapshot."""

    def __init__(self, recent: int = RECENT_FRAMES, clock=time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._latency = LatencyHistogram()
        self._forward = LatencyHistogram()
        self._overhead = LatencyHistogram()
        self._recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=recent)
        self.frames = 0
        self._first_done: float | None = None
        self._last_done: float | None = None
        self._started = clock()

    def record(self, latency_ms: float, forward_ms: float, done_at: float) -> None:
        """One overlaid frame: capture-to-overlay ``latency_ms``, the network's ``forward_ms``, when done."""
        with self._lock:
            self.frames += 1
            self._latency.add(latency_ms)
            self._forward.add(forward_ms)
            self._overhead.add(max(latency_ms - forward_ms, 0.0))
            self._recent.append((done_at, latency_ms))
            if self._first_done is None:
                self._first_done = done_at
            self._last_done = done_at

    def snapshot(
        self,
        *,
        captured: int,
        dropped: int,
        capture_span_s: float = 0.0,
        sink_dropped: dict[str, int] | None = None,
        reconnects: int = 0,
        signal_lost_events: int = 0,
        state: str = "running",
    ) -> StatsSnapshot:
        with self._lock:
            span = (self._last_done - self._first_done) if self._first_done is not None else 0.0
            fps = (self.frames - 1) / span if self.frames > 1 and span > 0 else 0.0
            recent = list(self._recent)
            snap_latency = Percentiles.of(self._latency)
            snap_forward = Percentiles.of(self._forward)
            snap_overhead = Percentiles.of(self._overhead)
            frames = self.frames
        recent_fps = 0.0
        if len(recent) > 1 and recent[-1][0] > recent[0][0]:
            recent_fps = (len(recent) - 1) / (recent[-1][0] - recent[0][0])
        lat = np.array([v for _, v in recent]) if recent else None
        return StatsSnapshot(
            frames=frames,
            captured=captured,
            dropped=dropped,
            fps=round(fps, 3),
            capture_fps=round((captured - 1) / capture_span_s, 3)
            if captured > 1 and capture_span_s > 0
            else 0.0,
            duration_s=round(self._clock() - self._started, 3),
            latency_ms=snap_latency,
            forward_ms=snap_forward,
            overhead_ms=snap_overhead,
            recent_fps=round(recent_fps, 2),
            recent_latency_p50_ms=None if lat is None else round(float(np.percentile(lat, 50)), 2),
            recent_latency_p95_ms=None if lat is None else round(float(np.percentile(lat, 95)), 2),
            sink_dropped=dict(sink_dropped or {}),
            reconnects=reconnects,
            signal_lost_events=signal_lost_events,
            state=state,
            recent_frames=len(recent),
        )
