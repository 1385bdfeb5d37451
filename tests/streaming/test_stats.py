"""Latency percentiles in constant memory, fps, and the snapshot layout that becomes STATS.json."""

from __future__ import annotations

import math

import numpy as np
import pytest

from usvid.streaming.stats import LatencyHistogram, StreamStats


def test_histogram_percentiles_within_one_percent_of_exact():
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=3.0, sigma=0.5, size=20_000)  # ~20 ms, long right tail
    hist = LatencyHistogram()
    for v in values:
        hist.add(v)
    for q in (50, 95, 99):
        exact = float(np.percentile(values, q, method="inverted_cdf"))
        assert hist.percentile(q) == pytest.approx(exact, rel=0.01)
    assert hist.count == len(values)
    assert hist.mean == pytest.approx(values.mean())
    assert hist.max == pytest.approx(values.max())


def test_histogram_constant_input_reports_itself_and_memory_is_fixed():
    hist = LatencyHistogram()
    size = hist._counts.nbytes
    for _ in range(50_000):
        hist.add(12.5)
    assert hist.percentile(50) == hist.percentile(99) == 12.5
    assert hist._counts.nbytes == size


def test_histogram_empty_is_nan():
    assert math.isnan(LatencyHistogram().percentile(50))


def test_stream_stats_fps_and_overhead():
    stats = StreamStats()
    for i in range(31):
        stats.record(latency_ms=20.0, forward_ms=15.0, done_at=i / 30)
    snap = stats.snapshot(captured=40, dropped=9, capture_span_s=39 / 30)
    assert snap.frames == 31 and snap.dropped == 9 and snap.captured == 40
    assert snap.fps == pytest.approx(30.0, rel=1e-3)
    assert snap.capture_fps == pytest.approx(30.0, rel=1e-3)
    assert snap.latency_ms.p50 == 20.0 and snap.overhead_ms.p95 == 5.0 and snap.forward_ms.p99 == 15.0
    d = snap.to_dict()
    assert set(d["latency_ms"]) >= {"p50", "p95", "p99"}
    assert {"frames", "dropped", "fps", "latency_ms"} <= set(d)


def test_stream_stats_before_first_frame():
    snap = StreamStats().snapshot(captured=0, dropped=0)
    assert snap.frames == 0 and snap.fps == 0.0 and snap.latency_ms.p50 is None
    assert snap.recent_latency_p50_ms is None
