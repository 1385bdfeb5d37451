"""Scan-region handling in the stream: detection in the background, fixed --roi, blanking, size changes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.streaming import (
    HEIGHT,
    WIDTH,
    CollectSink,
    FakePredictor,
    SyntheticLiveReader,
    synthetic_frames,
    wait_for,
)
from usvid.errors import InputError
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.scan_region import ScanRegionTracker, model_input
from usvid.video.roi import RegionConfig, ScanRegion

# Where synthetic_frames puts the changing "scan": rows H//5 .. H-4, columns W//6 .. W - W//6.
SCAN = (WIDTH // 6, HEIGHT // 5, WIDTH - 2 * (WIDTH // 6), HEIGHT - 4 - HEIGHT // 5)


def test_tracker_detects_the_changing_region_in_the_background():
    changes = []
    tracker = ScanRegionTracker(RegionConfig(frames=16), on_change=lambda r, why: changes.append((r, why)))
    frames = synthetic_frames(40)[..., 0]
    assert tracker.update(frames[0]) is None  # whole frame until detection has enough frames
    for f in frames[1:]:
        tracker.update(f)
        time.sleep(0.005)  # a feed's pace; a burst would only make the detector sample fewer frames
    assert wait_for(lambda: tracker.region is not None)
    x, y, w, h = tracker.region.box
    sx, sy, sw, sh = SCAN
    assert abs(x - sx) <= 3 and abs(y - sy) <= 3 and abs(w - sw) <= 6 and abs(h - sh) <= 6
    assert changes[-1][1] == "detected"
    tracker.close()


def test_tracker_fixed_roi_is_rechecked_when_the_size_changes():
    tracker = ScanRegionTracker(RegionConfig((10, 10, 100, 50)))
    assert tracker.update(np.zeros((HEIGHT, WIDTH), np.uint8)).box == (10, 10, 100, 50)
    with pytest.raises(InputError, match="outside the 80x60 frame.*frame size changed"):
        tracker.update(np.zeros((60, 80), np.uint8))


def test_model_input_blanks_outside_the_scan_only_in_a_copy():
    grey = np.full((HEIGHT, WIDTH), 200, np.uint8)
    mask = np.ones((40, 60), np.uint8)
    mask[:10, :10] = 0  # e.g. a corner beside a sector
    out = model_input(grey, ScanRegion(5, 7, 60, 40, mask))
    assert out[7:17, 5:15].max() == 0 and out[20, 30] == 200 and out[0, 0] == 200
    assert grey.min() == 200  # the frame shown and recorded keeps its pixels
    same = model_input(grey, ScanRegion(5, 7, 60, 40, np.ones((40, 60), np.uint8)))
    assert same is grey  # nothing to blank: no copy


def test_pipeline_switches_to_the_detected_region_and_redetects_on_size_change():
    class Resizing(SyntheticLiveReader):
        def frames(self):
            for i, (bgr, grey, t) in enumerate(super().frames()):
                if i >= 60:  # the capture card switches mode: bigger frames, the scan elsewhere
                    bgr = np.zeros((HEIGHT + 20, WIDTH + 30, 3), np.uint8)
                    bgr[20:, 30:] = synthetic_frames(1, seed=i)[0]
                    grey = bgr[..., 0].copy()
                yield bgr, grey, t

    predictor = FakePredictor()
    sink = CollectSink()
    sink.queue_size = 256
    cfg = StreamConfig(source="synthetic://live", model=Path("unused.pt"), region=RegionConfig(frames=16), max_frames=120)
    StreamPipeline(cfg, predictor, reader=Resizing(fps=60), sinks=[sink]).run()
    rois = [(size, roi) for size, roi in zip(predictor.sizes, predictor.rois, strict=True)]
    assert rois[0][1] is None
    small = [roi for size, roi in rois if size == (WIDTH, HEIGHT) and roi is not None]
    big = [roi for size, roi in rois if size == (WIDTH + 30, HEIGHT + 20) and roi is not None]
    assert small and big
    assert abs(small[-1].x - SCAN[0]) <= 3 and abs(big[-1].x - (SCAN[0] + 30)) <= 3
    kinds = [e.message for e in sink.events if e.kind == "roi"]
    assert sum(m.startswith("detected") for m in kinds) == 2 and any("size changed" in m for m in kinds)
