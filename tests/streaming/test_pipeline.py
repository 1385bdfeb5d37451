"""The stream pipeline with a fake predictor: newest-frame policy, bounded memory, slow sinks, shutdown."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.streaming import HEIGHT, WIDTH, CollectSink, FakePredictor, SyntheticLiveReader
from usvid.errors import InputError, ProcessingError
from usvid.video.roi import RegionConfig, ScanRegion
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.sinks import JsonlWriter, Mp4Recorder, events_path


def config(source: str = "synthetic://live", **kwargs) -> StreamConfig:
    kwargs.setdefault("region", RegionConfig(detect=False))
    return StreamConfig(source=source, model=Path("unused.pt"), **kwargs)


def test_slow_model_drops_stale_frames_and_memory_stays_bounded():
    """100 fps in, a 30 ms model: about two frames in three are dropped (counted), none pile up."""
    reader = SyntheticLiveReader(fps=100)
    predictor = FakePredictor(delay_s=0.03)
    sink = CollectSink(keep=False)
    pipe = StreamPipeline(config(max_frames=150), predictor, reader=reader, sinks=[sink])
    held: list[int] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.01):
            held.append(len(reader.alive))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        pipe.start()
        summary = pipe.wait()
    finally:
        sampling.set()
        sampler.join()
    s = summary.stats
    assert s.captured == 150
    assert s.frames + s.dropped == s.captured  # every frame is either shown or counted as dropped
    assert s.dropped > 0.4 * s.captured
    assert predictor.max_active == 1 and predictor.calls == s.frames
    # Frames in flight at any moment: the source's current one, the capture slot, inference, the result slot,
    # overlay, the sink's queue and the one it is writing. Nothing else may hold on to a frame.
    assert max(held) <= 6 + sink.queue_size
    shown = sink.indices
    assert shown == sorted(shown) and len(shown) == s.frames
    assert s.latency_ms.max < 1000  # no backlog: a queue of 150 frames x 30 ms would take 4.5 s


def test_frames_in_flight_do_not_grow_with_run_length():
    """However long it runs (400 frames at 200 fps, a 20 ms model), at most five frames are alive at once."""
    reader = SyntheticLiveReader(fps=200)
    pipe = StreamPipeline(config(max_frames=400), FakePredictor(delay_s=0.02), reader=reader, sinks=[])
    held: list[int] = []
    pipe.start()
    while pipe.snapshot().state != "ended":
        held.append(len(reader.alive))
        time.sleep(0.01)
    summary = pipe.wait()
    assert summary.stats.captured == 400 and summary.stats.dropped > 200
    # The source's current frame, the capture slot, inference, the result slot, overlay: never more.
    assert max(held) <= 5


def test_slow_sink_never_stalls_inference():
    reader = SyntheticLiveReader(fps=60)
    slow = CollectSink("slow", delay_s=0.1)
    fast = CollectSink("fast")
    pipe = StreamPipeline(config(max_frames=60), FakePredictor(), reader=reader, sinks=[slow, fast])
    pipe.start()
    s = pipe.wait().stats
    assert s.frames >= 50  # inference kept up with the 60 fps source
    assert len(fast.frames) == s.frames
    assert s.sink_dropped["slow"] > 0 and len(slow.frames) + s.sink_dropped["slow"] == s.frames
    assert slow.closed and fast.closed


def test_recorded_file_as_fast_as_possible_is_lossless(clip_path):
    predictor = FakePredictor(delay_s=0.01)
    sink = CollectSink()
    sink.queue_size = 64
    pipe = StreamPipeline(config(str(clip_path)), predictor, sinks=[sink])
    summary = pipe.run()
    assert summary.stopped_by == "end of source"
    assert summary.stats.frames == summary.stats.captured == 30 and summary.stats.dropped == 0
    assert [f.result.frame.index for f in sink.frames] == list(range(30))
    assert predictor.sizes[0] == (WIDTH, HEIGHT)


def test_stats_json_and_jsonl(tmp_path, clip_path):
    stats_path, jsonl_path = tmp_path / "STATS.json", tmp_path / "pred.jsonl"
    cfg = config(str(clip_path), stats=stats_path, jsonl=jsonl_path)
    pipe = StreamPipeline(cfg, FakePredictor(delay_s=0.005), sinks=[JsonlWriter(jsonl_path)])
    pipe.run()
    stats = json.loads(stats_path.read_text())
    lines = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    frames = lines  # every line is a frame; events have their own file
    assert stats["frames"] == len(frames) == 30 and stats["captured"] == 30 and stats["dropped"] == 0
    assert stats["fps"] > 0
    lat = stats["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] >= stats["forward_ms"]["p50"] >= 5.0  # latency includes the 5 ms forward
    assert stats["class_names"] == ["benign", "malignant"] and stats["stopped_by"] == "end of source"
    first = frames[0]
    assert first["label"] == "malignant" and first["probs"]["malignant"] == pytest.approx(0.8)
    assert first["box"] == [WIDTH // 4, HEIGHT // 4, WIDTH // 2, HEIGHT // 2]  # [x, y, w, h]
    assert first["box_score"] == pytest.approx(0.9) and "raw_box" not in first  # no smoothing: no raw_*
    events = [json.loads(line) for line in events_path(jsonl_path).read_text().splitlines()]
    assert events[-1]["event"] == "stopped" and all("frame_index" not in e for e in events)


def test_max_frames(clip_path):
    summary = StreamPipeline(config(str(clip_path), max_frames=5), FakePredictor(), sinks=[]).run()
    assert summary.stats.captured == 5 and summary.stats.frames == 5 and summary.stopped_by == "max frames"


def test_fixed_roi_reaches_the_model_and_the_box(clip_path):
    predictor = FakePredictor()
    sink = CollectSink()
    StreamPipeline(config(str(clip_path), region=RegionConfig((10, 12, 100, 60)), max_frames=3), predictor, sinks=[sink]).run()
    assert predictor.rois == [ScanRegion(10, 12, 100, 60)] * 3
    x0, y0, x1, y1 = sink.frames[0].result.box.as_xyxy()
    assert 10 <= x0 < x1 <= 110 and 12 <= y0 < y1 <= 72


def test_roi_outside_the_frame_is_a_clear_error(clip_path):
    pipe = StreamPipeline(config(str(clip_path), region=RegionConfig((100, 0, 100, 60))), FakePredictor(), sinks=[])
    with pytest.raises(InputError, match=r"--roi.*outside the 174x98 frame"):
        pipe.run()


def test_model_failure_stops_the_stream_and_finalises_files(tmp_path, clip_path):
    class Failing(FakePredictor):
        def predict(self, frames, roi=None):
            if self.calls == 5:
                raise RuntimeError("boom")
            return super().predict(frames, roi)

    out = tmp_path / "rec.mp4"
    pipe = StreamPipeline(config(str(clip_path), record=out), Failing(), sinks=[Mp4Recorder(out, fps=15)])
    with pytest.raises(ProcessingError, match="RuntimeError: boom"):
        pipe.run()
    import av

    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 5


def test_signal_lost_screen_goes_to_live_views_only():
    reader = SyntheticLiveReader(fps=60, lose_after=20)
    view, recorder = CollectSink("view", idle=True), CollectSink("recorder")
    cfg = config(read_timeout_s=0.3, reconnect_initial_s=0.1, reconnect_max_s=0.2)
    pipe = StreamPipeline(cfg, FakePredictor(), reader=reader, sinks=[view, recorder])
    pipe.start()
    deadline = time.perf_counter() + 5
    while not any(f.result is None for f in view.frames) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert pipe.live_status().state.value == "signal lost"
    pipe.stop("test")
    summary = pipe.wait()
    idle = [f for f in view.frames if f.result is None]
    assert idle and all(f.result is not None for f in recorder.frames)
    h, w = idle[0].image.shape[:2]
    band = idle[0].image[h // 3 : 2 * h // 3, :, :].reshape(-1, 3).astype(int)
    assert ((band[:, 2] > 150) & (band[:, 0] < 100) & (band[:, 1] < 100)).sum() > 20  # red "SIGNAL LOST" text
    assert summary.stats.signal_lost_events == 1 and summary.stopped_by == "test"
    assert [e.kind for e in recorder.events][:1] == ["signal_lost"]
