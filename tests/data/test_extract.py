"""``extract``: manifest / BUSI / single-video sources -> frame store; faults, resume, CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers.datasets import H, N, W, make_busi, make_dataset
from usvid.boxes import Box
from usvid.data.extract import ExtractConfig, extract
from usvid.data.extract.job import VideoJob
from usvid.data.manifest import VideoEntry, write_annotations, write_manifest
from usvid.data.splits import SplitFractions
from usvid.data.store import FrameStore, Letterbox, stored_corners
from usvid.errors import ConfigError, InputError, ProcessingError
from usvid.video.reader import expand_range, open_video
from usvid.video.roi import RegionConfig, RegionDetector
from usvid.video.testvideos import ultrasound_layout, write_test_video

pytestmark = pytest.mark.timeout(120)
SMALL = dict(size=64, batch_size=8)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_manifest_to_store(dataset, tmp_path):
    summary = extract(dataset, tmp_path / "store", ExtractConfig(**SMALL))
    assert summary.ok and summary.extracted == 4 and summary.skipped == 0
    store = FrameStore(tmp_path / "store")
    assert store.size == 64 and store.labels == ["benign", "malignant"]
    assert [v.video_id for v in store.videos] == ["v0", "v1", "v2", "v3"] and len(store.frames) == 4 * N
    frames = store.frames_of("v1")
    assert isinstance(frames, np.memmap) and frames.shape == (N, 64, 64) and frames.dtype == np.uint8
    # The scan region is in source pixels and leaves the burned-in text band out.
    lay = ultrasound_layout(W, H)
    v0 = store.videos[0]
    assert (
        v0.roi[1] >= lay.text_band[3] and v0.roi[0] >= lay.ruler[2] and v0.num_frames == N and v0.fps == 25.0
    )
    # Letterbox: the crop is wider than tall, so rows above and below are black padding.
    assert (frames[:, 0, :] == 0).all() and frames[:, 32, :].mean() > 20
    # Sparse annotations: frame 3 has two lesions, frame 7 is an explicit "no lesion" frame.
    annotated = {f.frame_index: f for f in store.frames if f.video_id == "v0" and f.annotated}
    assert set(annotated) == {3, 7}
    f3, f7 = annotated[3], annotated[7]
    lb = Letterbox(v0.roi[2], v0.roi[3], 64)
    rx, ry = v0.roi[:2]
    expected = [lb.box((40 - rx, 30 - ry, 70 - rx, 50 - ry)), lb.box((90 - rx, 60 - ry, 100 - rx, 68 - ry))]
    assert f3.has_box and list(f3.boxes) == expected
    (ax0, ay0, _, _), (_, _, bx1, by1) = (stored_corners(b) for b in expected)
    assert f3.box == Box.from_xyxy(ax0, ay0, bx1, by1)
    mask = store.mask_of("v0", f3.store_index)
    assert mask.shape == (64, 64) and set(np.unique(mask)) == {0, 255}
    x0, y0, x1, y1 = (int(round(v)) for v in stored_corners(expected[0]))
    assert (mask[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] == 255).all() and mask[: y0 - 1].max() == 0
    assert not f7.has_box and f7.box is None and store.mask_of("v0", f7.store_index).max() == 0
    assert store.mask_of("v0", 0) is None
    # Splits are per patient: no patient in two splits; split() returns that split's frames.
    by_patient = {}
    for f in store.frames:
        by_patient.setdefault(f.patient_id, set()).add(f.split)
    assert all(len(s) == 1 for s in by_patient.values())
    assert sum(len(store.split(s)) for s in ("train", "val", "test")) == len(store.frames)
    with pytest.raises(ConfigError, match="unknown split"):
        store.split("valid")
    with pytest.raises(InputError, match="no video 'v9'"):
        store.frames_of("v9")


def test_csv_columns(dataset, tmp_path):
    extract(dataset, tmp_path / "store", ExtractConfig(**SMALL))
    with (tmp_path / "store" / "videos.csv").open() as f:
        cols = next(csv.reader(f))
    assert cols[:11] == [
        "video_id",
        "patient_id",
        "label",
        "split",
        "source",
        "roi_x",
        "roi_y",
        "roi_w",
        "roi_h",
        "num_frames",
        "fps",
    ]
    with (tmp_path / "store" / "frames.csv").open() as f:
        cols = next(csv.reader(f))
    assert cols[:12] == [
        "video_id",
        "patient_id",
        "frame_index",
        "timestamp",
        "label",
        "split",
        "has_box",
        "x0",
        "y0",
        "x1",
        "y1",
        "store_index",
    ]
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    assert meta["format"] == "usvid-store" and meta["version"] == 1 and "letterbox" in meta["resize"]


def test_sampling_every_and_fps(dataset, tmp_path):
    extract(dataset, tmp_path / "every", ExtractConfig(every=4, **SMALL))
    store = FrameStore(tmp_path / "every")
    assert [f.frame_index for f in store.frames if f.video_id == "v0"] == [
        0,
        3,
        4,
        7,
        8,
        12,
        16,
    ]  # + annotated
    assert [f.frame_index for f in store.frames if f.video_id == "v1"] == [0, 4, 8, 12, 16]
    assert [f.store_index for f in store.frames if f.video_id == "v1"] == [0, 1, 2, 3, 4]
    extract(dataset, tmp_path / "fps", ExtractConfig(fps=5, **SMALL))
    stamps = [f.timestamp for f in FrameStore(tmp_path / "fps").frames if f.video_id == "v2"]
    assert stamps == pytest.approx([0.0, 0.2, 0.4, 0.6])
    with pytest.raises(ConfigError, match="choose one"):
        ExtractConfig(every=2, fps=5)


def test_fixed_roi_and_dedupe(tmp_path):
    # A still probe: 8 moving frames, then 12 exact copies of the last one (lossless, so differences are 0).
    path = tmp_path / "src" / "still.mkv"
    path.parent.mkdir()
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (45, 71), dtype=np.uint8) for _ in range(8)]
    frames += [frames[-1]] * 12
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 71, 45, "gray"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="gray")))
        c.mux(s.encode())
    summary = extract(path, tmp_path / "store", ExtractConfig(region=RegionConfig((3, 4, 60, 40)), dedupe=True, **SMALL))
    store = FrameStore(tmp_path / "store")
    assert summary.deduped == 12 and len(store.frames) == 8
    assert store.videos[0].roi == (3, 4, 60, 40) and store.videos[0].label == "unknown"
    with pytest.raises(InputError, match="outside the 71x45 frame"):
        extract(path, tmp_path / "bad", ExtractConfig(region=RegionConfig((30, 4, 60, 40)), strict=True, **SMALL))


def _faulty_dataset(root: Path) -> Path:
    good = [
        write_test_video(root / f"good{i}.mp4", kind="ultrasound", width=W, height=H, num_frames=12, seed=i)
        for i in range(2)
    ]
    (root / "zero.mp4").touch()
    (root / "notes.mp4").write_text("not a video\n" * 40)
    (root / "random.mp4").write_bytes(
        np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes()
    )
    data = good[0].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    i = data.rfind(b"avc1")
    (root / "codec.mp4").write_bytes(data[:i] + b"zzzz" + data[i + 4 :])
    for name in ("past", "outside", "negative"):
        shutil.copy(good[1], root / f"{name}.mp4")
    rows = [
        ("good0", "p0", "good0.mp4", "benign"),
        ("good1", "p1", "good1.mp4", "malignant"),
        ("zero", "p2", "zero.mp4", "benign"),
        ("notes", "p3", "notes.mp4", "benign"),
        ("random", "p4", "random.mp4", "benign"),
        ("truncated", "p5", "truncated.mp4", "benign"),
        ("codec", "p6", "codec.mp4", "benign"),
        ("past", "p7", "past.mp4", "benign"),
        ("outside", "p8", "outside.mp4", "benign"),
        ("negative", "p9", "negative.mp4", "benign"),
        ("good0", "p10", "good1.mp4", "benign"),  # duplicate id
        ("twoA", "p11", "good0.mp4", "benign"),
        ("twoB", "p11", "good1.mp4", "malignant"),  # two labels
        ("missing", "p12", "missing.mp4", "benign"),
    ]
    entries = [VideoEntry(v, p, root / f, lab) for v, p, f, lab in rows]
    write_manifest(root / "manifest.csv", entries, root)
    write_annotations(
        root / "annotations.json",
        {
            "good0": {2: [Box(40, 30, 20, 10)]},
            "past": {12: [Box(40, 30, 20, 10)]},
            "outside": {1: [Box(140, 30, 20, 10)]},
            "negative": {1: [Box(40, 30, 5, 10)]},
        },
        {v: (W, H) for v, *_ in rows},
    )
    # A Box cannot be negative, so the bad annotation is written into the file by hand.
    coco = json.loads((root / "annotations.json").read_text())
    negative = next(i["id"] for i in coco["images"] if i["video_id"] == "negative")
    next(a for a in coco["annotations"] if a["image_id"] == negative)["bbox"][2] = -5
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


EXPECTED_FAULTS = {
    "zero.mp4": "empty",
    "notes.mp4": "not a readable video",
    "random.mp4": "not a readable video",
    "truncated.mp4": "not a readable video|corrupt|truncated",
    "codec.mp4": "codec|not a readable video",
    "past.mp4": "annotation for frame 12.*12 frames",
    "outside.mp4": "outside the 150x98 image",
    "missing.mp4": "no such file",
}


def test_faults_are_reported_and_others_extract(tmp_path):
    root = _faulty_dataset(tmp_path / "ds")
    summary = extract(root, tmp_path / "store", ExtractConfig(**SMALL))
    store = FrameStore(tmp_path / "store")
    assert [v.video_id for v in store.videos] == ["good0", "good1"] and summary.extracted == 2
    text = [str(f) for f in summary.failures]
    assert len(text) == 12, "\n".join(text)
    for name, pattern in EXPECTED_FAULTS.items():
        hits = [t for t in text if name in t]
        assert len(hits) == 1 and __import__("re").search(pattern, hits[0]), (name, hits)
    assert any(
        "annotations.json" in t and "negative or zero-size box" in t and "'negative'" in t for t in text
    )
    assert any("manifest.csv:12" in t and "duplicate video_id 'good0'" in t for t in text)
    assert sum("patient 'p11' has two labels" in t and "manifest.csv" in t for t in text) == 2
    with pytest.raises((InputError, ProcessingError)):
        extract(root, tmp_path / "strict", ExtractConfig(strict=True, **SMALL))


def test_strict_stops_at_first_failing_video(tmp_path):
    root = tmp_path / "ds"
    write_test_video(root / "a.mp4", kind="ultrasound", width=W, height=H, num_frames=12)
    (root / "b.mp4").touch()
    write_test_video(root / "c.mp4", kind="ultrasound", width=W, height=H, num_frames=12)
    write_manifest(root / "manifest.csv", [VideoEntry(v, v, root / f"{v}.mp4", "x") for v in "abc"], root)
    with pytest.raises(InputError, match="b.mp4: file is empty"):
        extract(root, tmp_path / "store", ExtractConfig(strict=True, **SMALL))
    assert (tmp_path / "store" / "records").is_dir() and len(
        list((tmp_path / "store" / "records").iterdir())
    ) == 1


KILLER = """
import os, signal, sys
from usvid.data.extract import ExtractConfig, extract
from usvid.video.roi import RegionConfig
def progress(event):
    # SIGKILL in the middle of the second video, after some of its frames went to the temp file.
    if event.video_number == 2 and not event.finished and event.frames_done >= 16:
        os.kill(os.getpid(), signal.SIGKILL)
config = ExtractConfig(size=64, batch_size=8, region=RegionConfig(frames=8), workers=int(sys.argv[3]))
extract(sys.argv[1], sys.argv[2], config, progress=progress)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_and_resume_gives_the_same_store(dataset, tmp_path, workers):
    config = ExtractConfig(size=64, batch_size=8, region=RegionConfig(frames=8), workers=workers)
    extract(dataset, tmp_path / "reference", replace(config, workers=1))
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(dataset), str(killed), str(workers)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    # No half-written array is visible: every visible .npy is complete, every record has its array (a video
    # killed between renaming its array and writing its record has no record: it is extracted again).
    assert not (killed / "store.json").exists()
    visible = sorted(p.name for p in (killed / "frames").glob("*.npy"))
    for name in visible:
        assert np.load(killed / "frames" / name).shape == (N, 64, 64)
    records = sorted(p.name for p in (killed / "records").glob("*.json"))
    assert {r.replace(".json", ".npy") for r in records} <= set(visible)
    if workers == 1:  # one video at a time: the first is done, the second was cut off
        assert len(records) == 1
    assert list((killed / "frames").glob(".*.tmp"))  # the interrupted video's temp file, hidden
    summary = extract(dataset, killed, config)
    assert summary.skipped == len(records) and summary.extracted == 4 - len(records)
    # Same bytes as one uninterrupted run, whatever the number of workers of either.
    assert _tree(killed) == _tree(tmp_path / "reference")


def test_rerun_is_a_noop_and_settings_are_checked(dataset, tmp_path):
    out = tmp_path / "store"
    extract(dataset, out, ExtractConfig(**SMALL))
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    summary = extract(dataset, out, ExtractConfig(**SMALL))
    assert summary.skipped == 4 and summary.extracted == 0 and len(summary.counts) > 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    with pytest.raises(InputError, match="other settings"):
        extract(dataset, out, ExtractConfig(size=96, batch_size=8))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        extract(dataset, tmp_path / "other", ExtractConfig(**SMALL))


def test_busi_folder_masks_boxes_groups(tmp_path):
    root = make_busi(tmp_path / "busi")
    summary = extract(
        root,
        tmp_path / "store",
        ExtractConfig(groups=root / "near_duplicates.csv", seed=1, split=SplitFractions(50, 50, 0), **SMALL),
    )
    store = FrameStore(tmp_path / "store")
    assert summary.ok and store.labels == ["benign", "malignant", "normal"] and len(store.frames) == 4
    frames = {f.video_id: f for f in store.frames}
    assert all(f.annotated for f in frames.values())
    assert frames["benign (1)"].split == frames["malignant (1)"].split  # near-duplicate group kept together
    two = frames["benign (2)"]
    assert two.num_boxes if hasattr(two, "num_boxes") else len(two.boxes) == 2
    lb = Letterbox(83, 57, 64)
    assert list(two.boxes) == [lb.box((5, 5, 15, 15)), lb.box((40, 30, 52, 39))]
    mask = store.mask_of("benign (2)", 0)
    union = np.zeros((57, 83), np.uint8)
    union[5:15, 5:15] = 1
    union[30:39, 40:52] = 1
    np.testing.assert_array_equal(mask, lb.mask(union))
    normal = frames["normal (1)"]
    assert not normal.has_box and store.mask_of("normal (1)", 0).max() == 0
    assert store.videos[0].roi == (0, 0, 83, 57) and store.frames_of("benign (1)").shape == (1, 64, 64)


def test_dicom_source_keeps_no_patient_data(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom import examples

    src = Path(examples.get_path("ybr_color"))
    summary = extract(src, tmp_path / "store", ExtractConfig(**SMALL))
    store = FrameStore(tmp_path / "store")
    assert summary.ok and store.videos[0].num_frames == 30 and len(store.frames) == 30
    ds = pydicom.dcmread(src, stop_before_pixels=True)
    secrets = [
        str(ds.get(t)) for t in ("PatientName", "PatientID", "InstitutionName", "StudyDate") if ds.get(t)
    ]
    # Every file but the pixel data (where a 3-byte secret like "204" turns up by chance) and the arrays' headers.
    files = _tree(tmp_path / "store")
    blob = b"".join(data[:128] if name.endswith(".npy") else data for name, data in files.items())
    assert secrets and not any(s.encode() in blob for s in secrets)


def test_cli_extract(dataset, tmp_path):
    from typer.testing import CliRunner
    from usvid.cli.app import app

    runner = CliRunner()
    ok = runner.invoke(app, ["extract", str(dataset), str(tmp_path / "a"), "--size", "64", "--every", "5"])
    assert ok.exit_code == 0, ok.output
    assert "train" in ok.output and "annotated" in ok.output and "failed 0" in ok.output
    (dataset / "videos" / "v3.mp4").write_bytes(b"")
    bad = runner.invoke(app, ["extract", str(dataset), str(tmp_path / "b"), "--size", "64"])
    assert bad.exit_code == 1 and "v3.mp4" in bad.output and "empty" in bad.output
    usage = runner.invoke(app, ["extract", str(dataset), str(tmp_path / "c"), "--split", "70,30"])
    assert usage.exit_code == 2 and "--split" in usage.output
    workers = runner.invoke(app, ["extract", str(dataset), str(tmp_path / "d"), "--workers", "-1"])
    assert workers.exit_code == 2 and "--workers -1" in workers.output


@pytest.mark.parametrize("every", [None, 3])
def test_store_does_not_depend_on_workers(dataset, tmp_path, every):
    stores = {}
    for workers in (1, 2, 3):
        config = ExtractConfig(workers=workers, every=every, dedupe=every is None, **SMALL)
        summary = extract(dataset, tmp_path / f"w{workers}", config)
        assert summary.ok and summary.extracted == 4
        stores[workers] = _tree(tmp_path / f"w{workers}")
    assert stores[1] == stores[2] == stores[3]


@pytest.mark.realdata
def test_real_busi_subset(shared_data, tmp_path):
    import cv2

    src = tmp_path / "busi"
    for cls, names in {"benign": ["benign (1)", "benign (4)"], "normal": ["normal (1)"]}.items():
        (src / cls).mkdir(parents=True)
        for name in names:
            for p in (shared_data / "busi" / cls).glob(f"{name}*.png"):
                if p.stem == name or p.stem.startswith(f"{name}_mask"):
                    shutil.copy(p, src / cls / p.name)
    extract(src, tmp_path / "store", ExtractConfig(size=96, batch_size=8))
    store = FrameStore(tmp_path / "store")
    real = cv2.imread(str(src / "benign" / "benign (1)_mask.png"), cv2.IMREAD_GRAYSCALE) > 127
    h, w = real.shape
    mask = store.mask_of("benign (1)", 0)
    assert abs((mask > 0).sum() - real.sum() * (Letterbox(w, h, 96).scaled[0] / w) ** 2) < 0.1 * real.sum()
    assert store.mask_of("normal (1)", 0).max() == 0
    assert os.path.getsize(tmp_path / "store" / "frames.csv") > 0


def test_small_and_empty_splits_are_warned_about(tmp_path):
    from typer.testing import CliRunner
    from usvid.cli.app import app

    from tests.helpers.datasets import make_dataset

    six = make_dataset(tmp_path / "six", n_videos=12, num_frames=8)  # 6 patients, 3 per class
    summary = extract(six, tmp_path / "store6", ExtractConfig(split=SplitFractions.from_percent([50, 25, 25]), **SMALL))
    store = FrameStore(tmp_path / "store6")
    patients = {s: {v.patient_id for v in store.videos if v.split == s} for s in ("train", "val", "test")}
    assert {s: len(p) for s, p in patients.items()} == {"train": 3, "val": 1, "test": 2}
    lines = summary.split_warnings
    assert len(lines) == 3 and store.meta["split_warnings"] == lines
    assert lines[0].startswith("split 'train': only 3 patients (fewer than 10")
    val_label = store.videos[[v.split for v in store.videos].index("val")].label
    other = ({"benign", "malignant"} - {val_label}).pop()
    assert lines[1].startswith("split 'val': only 1 patient (") and f"no '{other}' patient" in lines[1]
    runner = CliRunner()
    two = runner.invoke(app, ["extract", str(tmp_path / "six" / "manifest.csv"), str(tmp_path / "a"), "--size", "64",
                              "--split", "100,0,0"])
    assert two.exit_code == 0, two.output
    assert "split warning:" in two.output and "only 6 patients" in two.output
    assert "'val'" not in two.output and "'test'" not in two.output  # 0% splits are empty on purpose
    assert FrameStore(tmp_path / "a").meta["split_warnings"] == ["split 'train': only 6 patients (fewer than 10: "
                                                                 "figures measured on it have very wide intervals)"]


def test_empty_split_warning(dataset, tmp_path):
    summary = extract(dataset, tmp_path / "store", ExtractConfig(**SMALL))  # 2 patients at 70,15,15
    # two patients (one per class) cannot fill three splits: both held-out splits are named
    assert [line.split(" is empty")[0] for line in summary.split_warnings[1:]] == ["split 'val'", "split 'test'"]
    assert "(2 patients at --split 70,15,15)" in summary.split_warnings[2]
    assert FrameStore(tmp_path / "store").meta["split_warnings"] == summary.split_warnings


class _InlineJob(VideoJob):
    """A video job whose decoder runs on the job's own thread: the plain sequential path."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threads = 1


def test_decoding_ahead_stores_the_bytes_of_decoding_inline(tmp_path, monkeypatch):
    # One video at a time: each is decoded on a decode-ahead thread while the job letterboxes and writes.
    dataset = make_dataset(tmp_path / "ds", n_videos=2, num_frames=45)
    config = ExtractConfig(workers=1, region=RegionConfig(frames=12), **SMALL)
    assert extract(dataset, tmp_path / "ahead", config).ok
    monkeypatch.setattr("usvid.data.extract.jobs.VideoJob", _InlineJob)
    assert extract(dataset, tmp_path / "inline", config).ok
    ahead, inline = _tree(tmp_path / "ahead"), _tree(tmp_path / "inline")
    assert len(np.load(next((tmp_path / "ahead" / "frames").glob("v0-*.npy")))) == 45
    assert ahead.keys() == inline.keys() and all(ahead[k] == inline[k] for k in ahead)


@pytest.mark.parametrize("held_frames", [12, 45])  # the region known mid-video, and only at its end
def test_held_first_frames_are_stored_in_order_among_the_later_ones(tmp_path, held_frames):
    # The first frames wait (copied) for the scan region, then are stored a few per new frame: the store
    # must hold every frame, in source order, letterboxed to that region, as a plain loop over them gives.
    video = write_test_video(tmp_path / "v.mp4", kind="ultrasound", width=W, height=H, num_frames=45, seed=3)
    config = ExtractConfig(region=RegionConfig(frames=held_frames), **SMALL)
    assert extract(video, tmp_path / "store", config).ok
    with open_video(video, "pyav", threads=1) as reader:
        batches = list(reader.batches(45, raw_luma=True))
    grey, limited = batches[0].data[:, 0].numpy(), batches[0].limited_range
    detector = RegionDetector(held_frames, str(video))
    detector.add(grey[:held_frames], limited)
    letterbox = detector.region().letterbox(config.size)
    expected = np.zeros((45, config.size, config.size), np.uint8)
    for frame, out in zip(grey, expected):
        letterbox.into(frame, out)
    if limited:
        expand_range(expected)
    stored = np.load(next((tmp_path / "store" / "frames").glob("v-*.npy")))
    np.testing.assert_array_equal(stored, expected)
