"""A video that runs alone is extracted as segments split at keyframes: the store is the sequential one,
byte for byte."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.videos import remux_faststart
from usvid.boxes import Box
from usvid.data.extract import ExtractConfig, extract
from usvid.data.extract.job import VideoJob
from usvid.data.extract.segments import Cores, Segment, SegmentGroup, SharedRegion, plan_segments
from usvid.data.manifest import VideoEntry, write_annotations, write_manifest
from usvid.data.sources import SourceItem
from usvid.errors import ProcessingError
from usvid.video.pyav_backend import PyAVReader
from usvid.video.roi import RegionConfig
from usvid.video.testvideos import write_test_video

pytestmark = pytest.mark.timeout(120)
W, H, N = 150, 98, 150
SMALL = dict(size=64, batch_size=8, workers=1, region=RegionConfig(frames=24))
# Boxes on frames of every segment (cuts at 72 for 2 parts, 48 and 96 for 3), and an explicit "no lesion".
BOXES = {5: [Box(40, 30, 30, 20)], 40: [Box(90, 60, 10, 8)], 73: [Box(50, 40, 20, 15)], 90: [],
         101: [Box(40, 30, 30, 20), Box(90, 60, 10, 8)], 149: [Box(60, 35, 25, 20)]}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _dataset(root: Path, video: Path, boxes: dict = BOXES) -> Path:
    (root / "videos").mkdir(parents=True)
    copy = Path(shutil.copy(video, root / "videos" / video.name))
    write_manifest(root / "manifest.csv", [VideoEntry("v", "p0", copy, "benign")], root)
    write_annotations(root / "annotations.json", {"v": boxes}, {"v": (W, H)})
    return root


def _extract(src: Path, out: Path, config: ExtractConfig, monkeypatch, parts: int, ok: bool = True,
             per_core: int = 1):
    """Extract as on a machine of ``parts`` cores (``per_core`` segments per core, of 30 frames or more; 1:
    sequential); returns the summary and, per split video, its segments and whether they were stitched (not
    redone sequentially)."""
    split: list[tuple[int, bool]] = []
    run = Cores.run

    def spy(self, segments, *args):
        passes = run(self, segments, *args)
        split.append((len(segments), passes is not None))
        return passes

    with monkeypatch.context() as m:
        m.setattr("usvid.data.extract.jobs.os.cpu_count", lambda: parts)
        m.setattr("usvid.data.extract.jobs.SEGMENTS_PER_CORE", per_core)
        m.setattr("usvid.data.extract.job.MIN_SEGMENT_FRAMES", 30)
        m.setattr(Cores, "run", spy)
        summary = extract(src, out, config)
    assert not ok or not summary.failures, summary.failures
    return summary, split


@pytest.fixture(scope="module", params=["plain", "bframes-vfr"])
def video(request, tmp_path_factory) -> Path:
    options = {"plain": {}, "bframes-vfr": {"bframes": 2, "vfr": True}}[request.param]
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    return write_test_video(path, kind="ultrasound", width=W, height=H, num_frames=N, gop=12, seed=4,
                            **options)


def test_plan_cuts_at_the_nearest_keyframes():
    keys = list(range(0, N, 12))
    assert plan_segments(keys, N, 2, 24, 30) == [Segment(0, 72), Segment(72, None)]
    assert plan_segments(keys, N, 3, 24, 30) == [Segment(0, 48), Segment(48, 96), Segment(96, None)]
    assert plan_segments(keys, N, 2, 96, 30) == [Segment(0, None)]  # region frames lie in the first
    assert plan_segments([0], N, 2, 0, 30) == [Segment(0, None)]  # no keyframe but the first
    assert plan_segments(keys, 50, 2, 0, 30) == [Segment(0, None)]  # too short: segments under 30 frames
    assert plan_segments([0, 70, 72], N, 3, 0, 30) == [Segment(0, 70), Segment(70, None)]  # 72: 2 after 70
    # More parts than the frames allow: as many as have 120 frames (the default) or more, evenly cut.
    assert plan_segments(list(range(0, 300, 30)), 300, 8, 96) == [Segment(0, 150), Segment(150, None)]
    assert len(plan_segments(list(range(0, 1800, 30)), 1800, 8, 96)) == 8


def _on_thread(k: int, segment: Segment) -> str:
    # The first ends while the others run (or wait for a core); margins wide enough for a loaded CI machine.
    time.sleep(0.5 if k == 0 else 1.0)
    return threading.current_thread().name


@pytest.mark.parametrize("others", [0, 1])
def test_segments_take_only_free_cores_else_run_on_the_jobs_thread(others):
    segments = plan_segments(list(range(0, N, 12)), N, 3, 0, 30)
    with ThreadPoolExecutor(2, thread_name_prefix="pool") as pool:
        cores = Cores(3, pool)
        group = SegmentGroup(SharedRegion(None), len(segments), lambda seen: None)
        with ExitStack() as working:
            for _ in range(1 + others):  # this video's job, and the other videos'
                working.enter_context(cores.job())
            threads = cores.run(segments, _on_thread, group)
    main = threading.current_thread().name
    if others:  # 3 cores, 2 jobs: one free core, for one of the two later segments; the job runs the other
        assert threads[0] == main and sorted(t == main for t in threads[1:]) == [False, True]
    else:
        assert threads[0] == main and all(t.startswith("pool") for t in threads[1:])


@pytest.mark.parametrize(
    ("parts", "settings"),
    [
        (2, {}),
        (3, {}),
        (2, {"every": 4}),
        (3, {"fps": 25 / 24}),  # a bucket starts at each cut (frames 48, 96)
        (2, {"fps": 7.0, "region": RegionConfig(detect=False)}),  # frame 72 starts a bucket, 71 not
        (3, {"every": 5, "region": RegionConfig(roi=(20, 20, 110, 70))}),
    ],
    ids=["all", "all-3", "every", "fps-3", "fps-full-frame", "every-roi-3"],
)
def test_split_store_is_the_sequential_store(video, tmp_path, monkeypatch, parts, settings):
    src = _dataset(tmp_path / "ds", video)
    config = ExtractConfig(**{**SMALL, **settings})
    _, split = _extract(src, tmp_path / "split", config, monkeypatch, parts)
    _, sequential = _extract(src, tmp_path / "seq", config, monkeypatch, 1)
    assert split == [(parts, True)] and sequential == []
    assert _tree(tmp_path / "split") == _tree(tmp_path / "seq")


def test_more_segments_than_cores_give_the_sequential_store(video, tmp_path, monkeypatch):
    src = _dataset(tmp_path / "ds", video)
    config = ExtractConfig(**SMALL, fps=7.0)
    _, split = _extract(src, tmp_path / "split", config, monkeypatch, 2, per_core=4)
    _extract(src, tmp_path / "seq", config, monkeypatch, 1)
    assert split == [(3, True)]  # 0-59, 60-119, 120-149: 8 asked, cut where 30 frames or more allow
    assert _tree(tmp_path / "split") == _tree(tmp_path / "seq")


@pytest.mark.parametrize("kind", ["faststart", "matroska"])
def test_a_file_cut_short_splits_to_the_same_store_and_warning(tmp_path, monkeypatch, kind):
    if kind == "faststart":
        long = write_test_video(tmp_path / "long.mp4", kind="ultrasound", width=W, height=H, num_frames=N,
                                gop=12)
        video = remux_faststart(long, tmp_path / "cut.mp4")
    else:  # ffv1: every frame a keyframe; Matroska declares a duration, not a count
        video = write_test_video(tmp_path / "cut.mkv", kind="ultrasound", width=W, height=H, num_frames=N,
                                 codec="ffv1")
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.8)])
    src = _dataset(tmp_path / "ds", video, boxes={5: [Box(40, 30, 30, 20)], 80: [Box(50, 40, 20, 15)]})
    config = ExtractConfig(**SMALL)
    split_summary, split = _extract(src, tmp_path / "split", config, monkeypatch, 2)
    seq_summary, _ = _extract(src, tmp_path / "seq", config, monkeypatch, 1)
    assert split == [(2, True)] and len(split_summary.warnings) == 1
    assert split_summary.warnings == seq_summary.warnings and "truncated" in str(split_summary.warnings[0])
    assert _tree(tmp_path / "split") == _tree(tmp_path / "seq")
    with pytest.raises(ProcessingError, match="--strict"):
        _extract(src, tmp_path / "strict", replace(config, strict=True), monkeypatch, 2)


def test_a_failing_segment_is_redone_from_the_first_frame(video, tmp_path, monkeypatch):
    src = _dataset(tmp_path / "ds", video)
    real = PyAVReader.grey_segment

    def broken(self, start, stop, **kwargs):
        for frame in real(self, start, stop, **kwargs):
            if frame.index == 100:
                raise ProcessingError("a frame that does not decode from its keyframe")
            yield frame

    config = ExtractConfig(**SMALL)
    _extract(src, tmp_path / "seq", config, monkeypatch, 1)
    monkeypatch.setattr(PyAVReader, "grey_segment", broken)
    _, split = _extract(src, tmp_path / "split", config, monkeypatch, 2)
    assert split == [(2, False)]  # redone: no part file left, every byte the sequential one's
    assert _tree(tmp_path / "split") == _tree(tmp_path / "seq")


class _Stop(Exception):
    pass


def test_a_stop_in_any_segment_stops_all_and_leaves_no_file(video, tmp_path):
    item = SourceItem("v", "p0", "benign", video, "manifest")
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise _Stop

    with ThreadPoolExecutor(2) as pool:
        job = VideoJob(item, "train", ExtractConfig(**SMALL), tmp_path / "store", "v", parts=3,
                       cores=Cores(3, pool))
        with pytest.raises(_Stop):
            job.run(progress)
    assert [p.name for p in (tmp_path / "store" / "frames").iterdir()] == []


def test_a_first_segment_without_a_scan_region_fails_as_the_sequential_extraction(tmp_path, monkeypatch):
    # The later segments wait for the region the first one detects: its failure must wake them.
    from tests.helpers.videos import write_video

    video = write_video(tmp_path / "still.mp4", np.zeros((N, H, W, 3), np.uint8), fps=25, gop=12)
    src = _dataset(tmp_path / "ds", video, boxes={})
    failures = {}
    for parts in (1, 2):
        summary, split = _extract(src, tmp_path / f"p{parts}", ExtractConfig(**SMALL), monkeypatch, parts,
                                  ok=False)
        failures[parts] = summary.failures
    assert split == [(2, False)]  # tried, then redone from the first frame
    assert len(failures[1]) == 1 and failures[2] == failures[1] and "scan region" in failures[1][0].message
    assert _tree(tmp_path / "p1" / "frames") == _tree(tmp_path / "p2" / "frames") == {}
