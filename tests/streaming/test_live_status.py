"""The browser view's ``/status.json``: the same figures as the stats object and the ``--stats`` file, the
scan-region and signal states, the overlay's number format, and no credentials anywhere."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from usvid.video.roi import RegionConfig, ScanRegion
from tests.helpers.streaming import FakePredictor, SyntheticLiveReader, wait_for
from usvid.inference.overlay import OverlayStyle
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.config import ServeAddress
from usvid.streaming.results import FrameResult, OverlayFrame
from usvid.streaming.server import BrowserView, display_source, model_name
from usvid.streaming.sources import CapturedFrame, SourceState
from usvid.streaming.stats import RECENT_FRAMES


class SlowStartPredictor(FakePredictor):
    """Slow for its first ``slow_calls`` frames, then fast: the whole run's latency and the recent window's
    differ, so a status computed over the wrong frames shows."""

    def __init__(self, slow_calls: int, delay_s: float) -> None:
        super().__init__()
        self.slow_calls, self.slow_delay_s = slow_calls, delay_s

    def predict(self, frames, roi=None):
        self.delay_s = self.slow_delay_s if self.calls < self.slow_calls else 0.0
        return super().predict(frames, roi)


def fetch_status(url: str) -> dict:
    with urllib.request.urlopen(url + "status.json", timeout=5) as resp:
        return json.loads(resp.read())


def test_status_is_the_stats_recent_window_and_the_stats_file(tmp_path):
    stats_path, jsonl = tmp_path / "STATS.json", tmp_path / "pred.jsonl"
    cfg = StreamConfig(
        source="synthetic://admin:hunter2@feed/live", model=Path("runs/r18/best.pt"), serve="127.0.0.1:0",
        region=RegionConfig(detect=False), stats=stats_path, jsonl=jsonl, smoothing=False,
    )
    # 100 fps for 2.4 s; the first 40 frames take 25 ms each, so some are dropped and they are slow.
    reader = SyntheticLiveReader(fps=100, lose_after=240)
    pipe = StreamPipeline(cfg, SlowStartPredictor(40, 0.025), reader=reader)
    pipe.start()
    try:
        # After the source goes silent nothing changes, so the page, the stats and the file must agree.
        assert wait_for(lambda: pipe.live_status().state is SourceState.SIGNAL_LOST, 15), "no signal loss"
        time.sleep(0.3)
        status, snap = fetch_status(pipe.url), pipe.snapshot()
    finally:
        pipe.stop("test")
        pipe.wait()
    written = json.loads(stats_path.read_text())
    assert snap.frames > RECENT_FRAMES and snap.dropped > 0
    assert status["signal"] == "signal lost"
    for key, snap_value, file_key in (
        ("latency_ms_p50_recent", snap.recent_latency_p50_ms, "recent_latency_p50_ms"),
        ("latency_ms_p95_recent", snap.recent_latency_p95_ms, "recent_latency_p95_ms"),
        ("latency_window_frames", snap.recent_frames, "recent_frames"),
        ("fps_recent", snap.recent_fps, "recent_fps"),
        ("frames", snap.frames, "frames"),
        ("dropped", snap.dropped, "dropped"),
    ):
        assert status[key] == snap_value == written[file_key], key
    # Recomputed from the per-frame records: the last RECENT_FRAMES overlaid frames, not the whole run.
    latencies = [r["latency_ms"] for r in map(json.loads, jsonl.read_text().splitlines()) if "frame_index" in r]
    assert len(latencies) == snap.frames and status["latency_window_frames"] == RECENT_FRAMES
    recent = latencies[-RECENT_FRAMES:]
    assert status["latency_ms_p50_recent"] == pytest.approx(np.percentile(recent, 50), abs=0.006)
    assert status["latency_ms_p95_recent"] == pytest.approx(np.percentile(recent, 95), abs=0.006)
    assert np.percentile(latencies, 95) > status["latency_ms_p95_recent"] + 5  # the slow start is left out
    assert status["latency_ms_last_frame"] == pytest.approx(latencies[-1], abs=0.006)
    # The last prediction stays on the page while the signal is lost, in the overlay's format.
    assert status["frame"] is not None and status["class"] == "malignant"
    assert status["probability_text"] == "80%" and status["uncertain"] is False
    # Credentials never reach the page or the stats file; the model is named by its file.
    assert status["source"] == written["source"] == "synthetic://feed/live"
    assert "hunter2" not in json.dumps(status) + stats_path.read_text()
    assert status["model"] == "best.pt" and status["scan_region"] == "full frame"


def result_with(probs, roi: ScanRegion | None, index: int = 7) -> FrameResult:
    grey = np.zeros((60, 80), np.uint8)
    frame = CapturedFrame(np.zeros((60, 80, 3), np.uint8), grey, index, index / 30, time.perf_counter())
    p = np.asarray(probs, np.float32)
    return FrameResult(frame, ("benign", "malignant"), p, None, p, None, roi, 1.0, 2.0)


def view_showing(result: FrameResult | None, **kwargs) -> BrowserView:
    view = BrowserView(ServeAddress("127.0.0.1", 0), **kwargs)
    if result is not None:
        view.write(OverlayFrame(np.zeros((60, 80, 3), np.uint8), result, 12.5, SourceState.LIVE))
    return view


@pytest.mark.parametrize(
    ("mode", "roi", "state", "box"),
    [
        ("detect", None, "detecting", None),
        ("detect", ScanRegion(4, 6, 50, 40), "found", [4, 6, 50, 40]),
        ("fixed", ScanRegion(1, 2, 30, 20), "fixed", [1, 2, 30, 20]),
        ("full frame", None, "full frame", None),
    ],
)
def test_scan_region_state(mode, roi, state, box):
    status = view_showing(result_with((0.3, 0.7), roi), scan_region=mode).status()
    assert (status["scan_region"], status["scan_region_box"]) == (state, box)


def test_scan_region_states_from_a_running_pipeline():
    """``found`` only once the pipeline's detector has found the region the model then sees."""
    cfg = StreamConfig(source="synthetic://live", model=Path("unused.pt"), serve="127.0.0.1:0", region=RegionConfig(frames=8))
    pipe = StreamPipeline(cfg, FakePredictor(), reader=SyntheticLiveReader(fps=60))
    pipe.start()
    try:
        first = fetch_status(pipe.url)
        assert wait_for(lambda: fetch_status(pipe.url)["scan_region"] == "found", 10)
        status = fetch_status(pipe.url)
    finally:
        pipe.stop("test")
        pipe.wait()
    assert first["scan_region"] == "detecting" and first["scan_region_box"] is None
    seen = [r for r in pipe.predictor.rois if r is not None][-1]
    assert status["scan_region_box"] == [seen.x, seen.y, seen.w, seen.h]


def test_uncertain_prediction_in_the_overlay_format():
    status = view_showing(result_with((0.455, 0.545), None), style=OverlayStyle(uncertain_below=0.6)).status()
    assert status["class"] == "malignant" and status["probability_text"] == "55%"
    assert status["probability"] == pytest.approx(0.545, abs=1e-4) and status["uncertain"] is True


def test_status_before_the_first_frame():
    status = view_showing(None).status()
    assert status["signal"] == "connecting" and status["class"] is None and status["probability_text"] is None
    assert status["latency_ms_p50_recent"] is None and status["frames"] == 0
    assert status["scan_region"] == "detecting"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/live?channel=1", "rtsp://10.0.0.5:554/live?channel=1"),
        ("http://viewer@scanner.local/feed.ts", "http://scanner.local/feed.ts"),
        (
            "srt://10.0.0.9:9000?mode=caller&passphrase=hunter2",
            "srt://10.0.0.9:9000?mode=caller&passphrase=***",
        ),
        ("udp://127.0.0.1:5000", "udp://127.0.0.1:5000"),
        ("/dev/video0", "/dev/video0"),
        ("scans/patient 3.mp4", "scans/patient 3.mp4"),
    ],
)
def test_display_source_strips_credentials(given, shown):
    assert display_source(given) == shown


def test_view_from_config_names_source_and_model():
    cfg = StreamConfig(
        source="rtsp://admin:hunter2@cam/live", model="lanet-effl0-bus", serve="127.0.0.1:0",
        region=RegionConfig((0, 0, 20, 10)),
    )
    status = BrowserView.for_config(cfg, None).status()
    assert status["source"] == "rtsp://cam/live" and status["model"] == "lanet-effl0-bus"
    assert status["scan_region"] == "fixed" and model_name(Path("a/b/r18.onnx")) == "r18.onnx"
