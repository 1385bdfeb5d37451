"""``usvid extract``, ``usvid predict`` and ``usvid stream`` find the same scan region on the same clip.

All three feed :class:`usvid.video.roi.RegionDetector`; these tests run each command's own path (extraction's
store, predict's :func:`scan_region`, the stream's tracker fed by its own reader) and compare the regions, on a
limited-range H.264 clip, a full-range lossless one and the real clinical clips when ../shared has them.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from usvid.data.extract import ExtractConfig, extract
from usvid.inference.predict import PredictConfig, VideoSource, scan_region
from usvid.streaming import StreamConfig
from usvid.streaming.scan_region import ScanRegionTracker
from usvid.streaming.sources import make_reader
from usvid.video.reader import open_video
from usvid.video.roi import RegionConfig, ScanRegion
from usvid.video.testvideos import write_test_video

FRAMES = 24  # detection frames: enough for the synthetic scan's motion, quick to decode


def extracted_box(path: Path, out: Path, frames: int) -> tuple[tuple[int, int, int, int], str]:
    extract(path, out, ExtractConfig(size=64, batch_size=8, region=RegionConfig(frames=frames)))
    with (out / "videos.csv").open() as f:
        row = next(csv.DictReader(f))
    return tuple(int(row[k]) for k in ("roi_x", "roi_y", "roi_w", "roi_h")), row["roi_method"]


def predicted_region(path: Path, frames: int) -> ScanRegion:
    with open_video(path) as reader:
        width, height = reader.info.width, reader.info.height
    region, method = scan_region(VideoSource(path.stem, path), PredictConfig(region=RegionConfig(frames=frames)),
                                 width, height)
    assert method == "auto"
    return region


def streamed_region(path: Path, frames: int) -> ScanRegion:
    """The stream's tracker fed by the stream's own reader; every frame reaches the detector (a test's pace)."""
    tracker = ScanRegionTracker(RegionConfig(frames=frames))
    reader = make_reader(StreamConfig(source=str(path)))
    reader.open()
    try:
        for decoded in reader.frames():
            tracker.update(decoded.grey, decoded.luma)
            detector = tracker._detector
            deadline = time.perf_counter() + 5
            while detector is not None and not detector._queue.empty() and time.perf_counter() < deadline:
                time.sleep(0.001)
            if tracker.region is not None:
                break
        deadline = time.perf_counter() + 5
        while tracker.region is None and time.perf_counter() < deadline:
            time.sleep(0.01)
    finally:
        reader.close()
        tracker.close()
    assert tracker.region is not None, "the stream found no region"
    return tracker.region


def check_same(path: Path, tmp_path: Path, frames: int = FRAMES) -> ScanRegion:
    box, method = extracted_box(path, tmp_path / "store", frames)
    predicted, streamed = predicted_region(path, frames), streamed_region(path, frames)
    assert method == "auto" and predicted.method == streamed.method == "auto"
    assert box == predicted.box == streamed.box, (box, predicted.box, streamed.box)
    assert np.array_equal(streamed.mask, predicted.mask)
    return predicted


@pytest.mark.parametrize(("codec", "limited"), [("libx264", True), ("ffv1", False)], ids=["limited", "full"])
def test_extract_predict_and_stream_find_the_same_region(tmp_path, codec, limited):
    path = write_test_video(tmp_path / "scan.mkv", width=160, height=120, num_frames=40, kind="ultrasound",
                            codec=codec)
    with open_video(path) as reader:
        assert next(iter(reader.grey_frames(raw_luma=True))).limited_range == limited
    region = check_same(path, tmp_path)
    assert region.w < 160 and region.h < 120  # a real crop, not the whole frame


@pytest.mark.realdata
def test_clinical_clips_same_region_in_every_command(shared_data, tmp_path):
    clips = sorted((shared_data / "videos" / "clinical-ui").glob("*.m*"))
    if not clips:
        pytest.skip("no clinical-ui clips")
    for n, clip in enumerate(clips):
        box, method = extracted_box(clip, tmp_path / str(n), 96)
        predicted = predicted_region(clip, 96)
        assert (box, method) == (predicted.box, predicted.method), clip.name
        with open_video(clip) as reader:
            long_enough = reader.info.num_frames >= 96
        # A stream decides after 96 frames; a shorter recorded clip ends the stream first (extraction then
        # takes what there is), so there is no stream region to compare.
        if method == "auto" and long_enough:
            streamed = streamed_region(clip, 96)
            assert streamed.box == box and np.array_equal(streamed.mask, predicted.mask), clip.name


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_stream_reader_gives_the_grey_extraction_reads(tmp_path, codec):
    """The stream's model input starts from the grey pixels the store's frames start from (same expansion)."""
    path = write_test_video(tmp_path / "scan.mkv", width=160, height=120, num_frames=12, kind="ultrasound",
                            codec=codec)
    with open_video(path) as reader:
        extracted = [np.array(f.grey) for f in reader.grey_frames()]
    reader = make_reader(StreamConfig(source=str(path)))
    reader.open()
    try:
        streamed = [decoded.grey for decoded in reader.frames()]
    finally:
        reader.close()
    assert len(streamed) == len(extracted) == 12
    assert all(np.array_equal(a, b) for a, b in zip(streamed, extracted, strict=True))
