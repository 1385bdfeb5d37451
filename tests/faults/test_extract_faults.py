"""Fault corpus of ``usvid extract`` and the frame store: every faulty input is generated here, by code.

Each case asserts the named outcome (a one-line error and its exit code, or a warning and its count), that the
other videos of the same run still extract, and that files written before are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner
from usvid.cli.app import app

from usvid.boxes import Box
from usvid.data.extract import ExtractConfig, extract, file_stem
from usvid.data.manifest import VideoEntry, write_annotations, write_manifest
from usvid.data.store import FrameStore
from usvid.errors import ConfigError, InputError, ProcessingError
from usvid.video.roi import RegionConfig
from usvid.video.testvideos import write_test_video

pytestmark = pytest.mark.timeout(120)
W, H, N = 150, 98, 12
SMALL = {"size": 64, "batch_size": 8, "region": RegionConfig(frames=8)}
CLI_SMALL = ["--size", "64"]


# -- generators --------------------------------------------------------------------------------------------
def _video(path: Path, seed: int = 0, num_frames: int = N, **options) -> Path:
    return write_test_video(
        path, kind="ultrasound", width=W, height=H, num_frames=num_frames, seed=seed, **options
    )


def _dataset(root: Path, n: int = 4, labels: dict[str, str] | None = None, boxes: dict | None = None) -> Path:
    """``n`` one-video patients (``p{i}``, classes alternating); v0 has two boxes on frame 3 and frame 7 empty."""
    entries = []
    for i in range(n):
        vid = f"v{i}"
        path = root / "videos" / f"{vid}.mp4"
        if not path.exists():
            _video(path, seed=i)
        label = (labels or {}).get(vid, ("benign", "malignant")[i % 2])
        entries.append(VideoEntry(vid, f"p{i}", path, label))
    write_manifest(root / "manifest.csv", entries, root)
    frames = boxes if boxes is not None else {"v0": {3: [Box(40, 30, 30, 20), Box(90, 60, 10, 8)], 7: []}}
    write_annotations(root / "annotations.json", frames, {e.video_id: (W, H) for e in entries})
    return root


def _manifest(root: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    lines = ["video_id,patient_id,path,label", *(",".join(r) for r in rows)]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def _remux(src: Path, dst: Path, faststart: bool) -> Path:
    """Copy the packets of ``src`` into a new mp4, with the index (moov) first when ``faststart``."""
    options = {"movflags": "+faststart"} if faststart else {}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _huge_y4m(path: Path, side: int = 30000) -> Path:
    """A YUV4MPEG stream whose header claims ``side x side`` frames (FFmpeg answers EBUSY to it)."""
    path.write_bytes(f"YUV4MPEG2 W{side} H{side} F25:1 Ip A1:1 Cmono\nFRAME\n".encode() + bytes(64))
    return path


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(*args: object):
    result = CliRunner().invoke(app, ["extract", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _one_error(result, pattern: str, code: int = 2) -> str:
    """The run failed with exit ``code`` and exactly one ``error:`` line, matching ``pattern``."""
    import re

    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == code and len(lines) == 1, result.output
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def _stored(out: Path) -> dict[str, int]:
    return {v.video_id: v.stored_frames for v in FrameStore(out).videos}


# -- 5: a re-run after the inputs changed equals a fresh extraction ---------------------------------------
def _change_label(root: Path) -> set[str]:
    _dataset(root, labels={"v1": "benign"})
    return {"v1"}


def _add_box(root: Path) -> set[str]:
    _dataset(
        root,
        boxes={"v0": {3: [Box(40, 30, 30, 20), Box(90, 60, 10, 8)], 7: []}, "v2": {5: [Box(50, 40, 20, 15)]}},
    )
    return {"v2"}


def _replace_video(root: Path) -> set[str]:
    path = root / "videos" / "v3.mp4"
    stat = path.stat()
    _video(path, seed=99)  # same size and frame count, other pixels
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime, the content hash tells
    return {"v3"}


def _add_patient(root: Path) -> set[str]:
    _dataset(root, n=5)
    return {"v4"}


def _drop_video(root: Path) -> set[str]:
    manifest = root / "manifest.csv"
    manifest.write_text(
        "".join(line for line in manifest.read_text().splitlines(True) if not line.startswith("v2,"))
    )
    return set()


CHANGES = {
    "label": (_change_label, 0),
    "box": (_add_box, 0),
    "replaced video": (_replace_video, 0),
    "added patient": (_add_patient, 1),  # seed 1: the fifth patient moves p0 to test and p2 to train
    "dropped video": (_drop_video, 0),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_rerun_after_a_change_equals_a_fresh_extraction(tmp_path, change):
    edit, seed = CHANGES[change]
    root = _dataset(tmp_path / "ds")
    config = ExtractConfig(seed=seed, **SMALL)
    out = tmp_path / "store"
    extract(root, out, config)
    before_splits = {v.patient_id: v.split for v in FrameStore(out).videos}
    before = _mtimes(out)
    redone = edit(root)
    summary = extract(root, out, config)
    fresh = tmp_path / "fresh"
    extract(root, fresh, config)
    # Labels, boxes, frames, splits: byte for byte what a fresh extraction of the edited inputs writes.
    assert _tree(out) == _tree(fresh)
    listed = {v.video_id for v in FrameStore(fresh).videos}
    assert summary.extracted == len(redone) and summary.skipped == len(listed - redone)
    assert summary.changed == len(redone & {"v0", "v1", "v2", "v3"})
    # Unchanged videos were reused, not rewritten.
    for vid in listed - redone:
        arr = f"frames/{file_stem(vid)}.npy"
        assert _mtimes(out)[arr] == before[arr], vid
    moved = [
        (p, before_splits[p], v.split)
        for p, v in ((v.patient_id, v) for v in FrameStore(out).videos)
        if p in before_splits and before_splits[p] != v.split
    ]
    assert summary.split_changes == sorted(moved)
    if change == "added patient":
        assert summary.split_changes == [("p0", "val", "test"), ("p2", "test", "train")]
    if change == "dropped video":
        assert summary.removed == 1 and not any("v2" in name for name in _tree(out))


def test_cli_reports_changed_videos_and_moved_splits(tmp_path):
    root = _dataset(tmp_path / "ds")
    out = tmp_path / "store"
    assert _cli(root, out, *CLI_SMALL, "--seed", "1").exit_code == 0
    _dataset(root, n=5, labels={"v1": "benign"})  # a new patient and a new label
    result = _cli(root, out, *CLI_SMALL, "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "extracted 2 (1 of them changed since the last run), already done 3" in result.output
    notes = [line for line in result.output.splitlines() if "splits changed" in line]
    assert len(notes) == 1 and "patients moved (p0 val -> train" in notes[0]
    assert {v.video_id: v.label for v in FrameStore(out).videos}["v1"] == "benign"


def test_damaged_record_or_array_is_extracted_again(tmp_path):
    root = _dataset(tmp_path / "ds")
    out = tmp_path / "store"
    extract(root, out, ExtractConfig(**SMALL))
    reference = _tree(out)
    (out / "records" / f"{file_stem('v1')}.json").write_text("{half a rec")
    _cut(out / "frames" / f"{file_stem('v2')}.npy", 0.5)
    summary = extract(root, out, ExtractConfig(**SMALL))
    assert summary.extracted == 2 and summary.skipped == 2
    assert _tree(out) == reference


def test_foreign_files_in_a_store_are_never_touched(tmp_path):
    root = _dataset(tmp_path / "ds")
    out = tmp_path / "store"
    extract(root, out, ExtractConfig(**SMALL))
    foreign = {
        out / "notes.txt": b"mine",
        out / "frames" / "mine.npy": b"x",
        out / "records" / "v2.json": b"{}",
    }
    for path, data in foreign.items():
        path.write_bytes(data)
    _drop_video(root)
    summary = extract(root, out, ExtractConfig(**SMALL))
    assert summary.removed == 1 and all(path.read_bytes() == data for path, data in foreign.items())
    # A folder that is not a store is refused whole, its files left as they were.
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    _one_error(_cli(root, other, *CLI_SMALL), "not empty and is not a usvid store")
    assert [p.name for p in other.iterdir()] == ["keep.txt"] and (other / "keep.txt").read_text() == "keep"


# -- 7: a file cut short -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.5, 0.7, 0.9])
@pytest.mark.parametrize("kind", ["faststart", "matroska"])
def test_truncated_video_is_a_warning_with_a_count(tmp_path, kind, fraction):
    root = tmp_path / "ds"
    _video(root / "good.mp4", seed=1)
    if kind == "faststart":
        _remux(_video(tmp_path / "long.mp4", num_frames=60), root / "cut.mp4", faststart=True)
        name = "cut.mp4"
    else:
        write_test_video(root / "cut.mkv", width=71, height=45, num_frames=60, codec="ffv1")
        name = "cut.mkv"
    _cut(root / name, fraction)
    _manifest(root, [("good", "p0", "good.mp4", "benign"), ("cut", "p1", name, "malignant")])
    summary = extract(root, tmp_path / "store", ExtractConfig(**SMALL))
    stored = _stored(tmp_path / "store")
    assert summary.ended_early == 1 and stored["good"] == N and 0 < stored["cut"] < 60
    assert len(summary.warnings) == 1 and name in str(summary.warnings[0])
    assert "ended" in str(summary.warnings[0]) and "truncated" in str(summary.warnings[0])
    assert FrameStore(tmp_path / "store").meta["warnings"] == {"ended_early": ["cut"]}
    # The CLI says it and counts it; --strict refuses the video instead.
    result = _cli(root, tmp_path / "cli", *CLI_SMALL)
    assert result.exit_code == 0 and "ended early 1" in result.output and "warning:" in result.output
    strict = _cli(root, tmp_path / "strict", *CLI_SMALL, "--strict")
    _one_error(strict, rf"{name}: decoding ended .*--strict", code=1)


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.99])
def test_truncated_mp4_without_faststart_fails_alone(tmp_path, fraction):
    """Without faststart the index (moov) is at the end: a cut file has none and is not a readable video."""
    root = tmp_path / "ds"
    _video(root / "good.mp4", seed=1)
    _cut(_remux(_video(tmp_path / "long.mp4", num_frames=60), root / "cut.mp4", faststart=False), fraction)
    _manifest(root, [("good", "p0", "good.mp4", "benign"), ("cut", "p1", "cut.mp4", "malignant")])
    result = _cli(root, tmp_path / "store", *CLI_SMALL)
    assert result.exit_code == 1 and "cut.mp4: not a readable video" in result.output
    assert _stored(tmp_path / "store") == {"good": N}


def test_whole_videos_give_no_warning(tmp_path):
    root = tmp_path / "ds"
    _remux(_video(tmp_path / "a.mp4", num_frames=30), root / "fast.mp4", faststart=True)
    write_test_video(root / "b.mkv", width=71, height=45, num_frames=30, codec="ffv1")
    write_test_video(root / "c.mp4", width=94, height=62, num_frames=30, bframes=2, vfr=True)
    _manifest(
        root, [("fast", "p0", "fast.mp4", "a"), ("mkv", "p1", "b.mkv", "a"), ("vfr", "p2", "c.mp4", "b")]
    )
    summary = extract(root, tmp_path / "store", ExtractConfig(**SMALL))
    assert summary.ok and summary.ended_early == 0 and not summary.warnings


# -- 8: categories, label spellings, content that contradicts the extension ------------------------------
def _coco(root: Path, annotations: list[dict], categories: list[dict]) -> None:
    images = [{"id": 1, "video_id": "v0", "frame_index": 3}, {"id": 2, "video_id": "v1", "frame_index": 2}]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(coco))


def test_only_lesion_boxes_are_read_and_others_counted(tmp_path):
    root = _dataset(tmp_path / "ds", n=2)
    _coco(
        root,
        [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [40, 30, 30, 20]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [10, 20, 5, 60]},  # a caliper line
            {"id": 3, "image_id": 2, "category_id": 2, "bbox": [50, 30, 4, 40]},
        ],
        [{"id": 1, "name": "lesion"}, {"id": 2, "name": "caliper"}],
    )
    summary = extract(root, tmp_path / "store", ExtractConfig(**SMALL))
    frames = {(f.video_id, f.frame_index): f for f in FrameStore(tmp_path / "store").frames}
    assert len(frames["v0", 3].boxes) == 1 and frames["v1", 2].annotated and not frames["v1", 2].has_box
    notes = [str(w) for w in summary.warnings]
    assert len(notes) == 1 and "2 box(es) of other categories skipped (caliper: 2)" in notes[0]
    caliper = extract(root, tmp_path / "caliper", ExtractConfig(category="caliper", **SMALL))
    frames = {(f.video_id, f.frame_index): f for f in FrameStore(tmp_path / "caliper").frames}
    assert len(frames["v0", 3].boxes) == 1 and frames["v1", 2].has_box and caliper.ok
    missing = _cli(root, tmp_path / "none", *CLI_SMALL, "--category", "tumour")
    _one_error(missing, r"annotations.json: no category named 'tumour' \(categories: 'caliper', 'lesion'\)")
    assert not (tmp_path / "none").exists()


def test_label_spellings_are_one_class_with_a_warning(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        _video(root / f"v{i}.mp4", seed=i)
    _manifest(
        root,
        [
            ("v0", "p0", "v0.mp4", "benign"),
            ("v1", "p1", "v1.mp4", "Benign"),
            ("v2", "p2", "v2.mp4", "MALIGNANT"),
            ("v3", "p2", "v3.mp4", "malignant"),
        ],
    )
    result = _cli(root, tmp_path / "store", *CLI_SMALL)
    assert result.exit_code == 0, result.output
    assert FrameStore(tmp_path / "store").labels == ["benign", "malignant"]
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "manifest.csv:3: label 'Benign' read as 'benign'" in warnings[0]
    assert "label 'MALIGNANT' read as 'malignant'" in warnings[1]


def _png_as(path: Path) -> None:
    _, data = cv2.imencode(".png", np.full((H, W), 90, np.uint8))
    path.write_bytes(data.tobytes())


def _mkv_as(path: Path) -> None:
    path.write_bytes(
        write_test_video(path.with_suffix(".real.mkv"), width=71, height=45, codec="ffv1").read_bytes()
    )


def _mp4_as(path: Path) -> None:
    path.write_bytes(_video(path.with_suffix(".real.mp4")).read_bytes())


def _jpeg_as(path: Path) -> None:
    _, data = cv2.imencode(".jpg", np.full((H, W), 90, np.uint8))
    path.write_bytes(data.tobytes())


WRONG_EXTENSION = {
    "png named mp4": ("scan.mp4", _png_as, "the content is a PNG image, not an MP4/QuickTime video"),
    "mkv named mp4": ("scan.mp4", _mkv_as, "the content is a Matroska/WebM video, not an MP4"),
    "mp4 named avi": ("scan.avi", _mp4_as, "the content is an MP4/QuickTime video, not an AVI video"),
    "jpeg named dcm": ("scan.dcm", _jpeg_as, "the content is a JPEG image, not a DICOM file"),
}


@pytest.mark.parametrize("case", list(WRONG_EXTENSION))
def test_content_that_contradicts_its_extension_fails_alone(tmp_path, case):
    name, write, message = WRONG_EXTENSION[case]
    root = tmp_path / "ds"
    _video(root / "good.mp4")
    write(root / name)
    _manifest(root, [("good", "p0", "good.mp4", "benign"), ("wrong", "p1", name, "malignant")])
    result = _cli(root, tmp_path / "store", *CLI_SMALL)
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert result.exit_code == 1 and len(failed) == 1 and message in failed[0] and name in failed[0]
    assert _stored(tmp_path / "store") == {"good": N}


def test_image_folder_frame_with_the_wrong_content_fails_its_video(tmp_path):
    from usvid.video.testvideos import write_frame_folder

    root = tmp_path / "ds"
    _video(root / "good.mp4")
    folder = write_frame_folder(root / "frames", num_frames=5)
    _jpeg_as(folder / "frame_3.png")
    _manifest(root, [("good", "p0", "good.mp4", "benign"), ("folder", "p1", "frames", "malignant")])
    summary = extract(root, tmp_path / "store", ExtractConfig(**SMALL))
    assert len(summary.failures) == 1 and "frame_3.png: the content is a JPEG image" in str(
        summary.failures[0]
    )
    assert _stored(tmp_path / "store") == {"good": N}


# -- 10: one line, exit 2, never a traceback --------------------------------------------------------------
BAD_ANNOTATIONS = {
    "images is a number": ('{"images": 5}', r"'images' is 5, not a list"),
    "image is a string": ('{"images": ["abc"]}', r'images\[0\] is "abc", not an object'),
    "annotation is a number": ('{"images": [], "annotations": [1]}', r"annotations\[0\] is 1, not an object"),
    "top level is a list": ('["abc"]', r"not a COCO annotations file"),
    "categories is a string": (
        '{"images": [], "categories": "lesion"}',
        r"'categories' is \"lesion\", not a list",
    ),
    "not JSON": ('{"images": [', r"not valid JSON"),
    "not UTF-8": (b'{"images": [], "x": "\xff\xfe"}', r"not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(BAD_ANNOTATIONS))
def test_structurally_wrong_annotations_are_one_line_and_touch_nothing(tmp_path, case):
    text, pattern = BAD_ANNOTATIONS[case]
    root = _dataset(tmp_path / "ds", n=2)
    out = tmp_path / "store"
    assert _cli(root, out, *CLI_SMALL).exit_code == 0
    before = _tree(out)
    path = root / "annotations.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    _one_error(_cli(root, out, *CLI_SMALL), rf"annotations.json: .*{pattern}")
    assert _tree(out) == before
    _one_error(_cli(root, tmp_path / "new", *CLI_SMALL), pattern)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "bbox", ["[NaN, 30, 30, 20]", "[40, 30, Infinity, 20]", "[40, 30, 30]", '["a", 1, 2, 3]']
)
def test_bad_box_fails_only_its_video(tmp_path, bbox):
    root = _dataset(tmp_path / "ds", n=3)
    coco = json.loads((root / "annotations.json").read_text())
    text = json.dumps(coco).replace("[40.0, 30.0, 30.0, 20.0]", bbox).replace("[40, 30, 30, 20]", bbox)
    assert bbox in text
    (root / "annotations.json").write_text(text)
    result = _cli(root, tmp_path / "store", *CLI_SMALL)
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert result.exit_code == 1 and len(failed) == 1 and "annotation 1" in failed[0], result.output
    assert "non-finite box" in failed[0] or "needs bbox [x, y, w, h]" in failed[0]
    assert set(_stored(tmp_path / "store")) == {"v1", "v2"}


def test_nul_byte_in_a_path(tmp_path):
    root = _dataset(tmp_path / "ds", n=2)
    _one_error(_cli(f"{root}\x00x", tmp_path / "store", *CLI_SMALL), r"SRC: .* contains a NUL byte")
    _one_error(_cli(root, f"{tmp_path}/st\x00re", *CLI_SMALL), r"OUT: .* contains a NUL byte")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    # In a manifest row it fails that row only.
    rows = [("v0", "p0", "videos/v0.mp4", "benign"), ("v1", "p1", "videos/v1\x00.mp4", "malignant")]
    _manifest(root, rows)
    result = _cli(root, tmp_path / "store", *CLI_SMALL)
    assert (
        result.exit_code == 1
        and "manifest.csv:3: path 'videos/v1\\x00.mp4' contains a NUL byte" in result.output
    )
    assert set(_stored(tmp_path / "store")) == {"v0"}


def test_out_that_is_a_file_or_a_source(tmp_path):
    root = _dataset(tmp_path / "ds", n=2)
    existing = tmp_path / "store"
    existing.write_text("my notes")
    _one_error(_cli(root, existing, *CLI_SMALL), r"OUT .*store: is an existing file, not a folder")
    assert existing.read_text() == "my notes"
    before = _tree(root)
    _one_error(_cli(root, root, *CLI_SMALL), r"is also an input")
    assert _tree(root) == before


def test_unwritable_out_is_refused_before_work(tmp_path, monkeypatch):
    """As root a chmod 0555 folder stays writable, so the write probe is made to fail instead."""
    import tempfile

    root = _dataset(tmp_path / "ds", n=2)
    listed = []
    monkeypatch.setattr(
        "usvid.data.extract.plan.list_sources", lambda *a, **k: listed.append(a) or pytest.fail("work started")
    )

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    _one_error(_cli(root, tmp_path / "locked" / "store", *CLI_SMALL), r"cannot write in .*Permission denied")
    assert not listed and not (tmp_path / "locked").exists()


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into a read-only folder; see the monkeypatched case"
)
def test_read_only_out_for_real(tmp_path):
    root = _dataset(tmp_path / "ds", n=2)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _one_error(_cli(root, locked / "store", *CLI_SMALL), "cannot write")
    finally:
        locked.chmod(0o755)


def test_manifest_with_a_byte_order_mark(tmp_path):
    root = _dataset(tmp_path / "ds", n=2)
    manifest = root / "manifest.csv"
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    groups = tmp_path / "groups.csv"
    groups.write_bytes(b"\xef\xbb\xbfgroup,image\n1,v0\n1,v1\n")  # so is a groups list saved by a spreadsheet
    summary = extract(root, tmp_path / "store", ExtractConfig(groups=groups, **SMALL))
    assert summary.ok and _stored(tmp_path / "store") == {"v0": N, "v1": N}
    assert len({v.split for v in FrameStore(tmp_path / "store").videos}) == 1
    manifest.write_bytes(b"video_id,patient_id,path,label\nv0,p0,videos/v0.mp4,b\xe9nin\n")
    _one_error(_cli(root, tmp_path / "latin", *CLI_SMALL), r"manifest.csv: not UTF-8 text")


@pytest.mark.parametrize("side", [30000, 9000])
def test_oversized_frame_header_fails_alone_with_the_limit(tmp_path, side):
    root = tmp_path / "ds"
    _video(root / "good.mp4")
    _huge_y4m(root / "huge.y4m", side)
    _manifest(root, [("good", "p0", "good.mp4", "benign"), ("huge", "p1", "huge.y4m", "malignant")])
    result = _cli(root, tmp_path / "store", *CLI_SMALL)
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert result.exit_code == 1 and len(failed) == 1, result.output
    assert f"huge.y4m: frame size {side}x{side} is over the limit" in failed[0] and "busy" not in failed[0]
    assert _stored(tmp_path / "store") == {"good": N}


def test_oversized_png_header_fails_its_image(tmp_path):
    from usvid.video.images import read_image

    path = tmp_path / "big.png"
    _, data = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    data = bytearray(data.tobytes())
    data[16:24] = (30000).to_bytes(
        4, "big"
    ) * 2  # IHDR width, height (the CRC no longer matches: never decoded)
    path.write_bytes(bytes(data))
    with pytest.raises(ProcessingError, match="frame size 30000x30000 is over the limit"):
        read_image(path, grey=True)


@pytest.mark.parametrize(
    ("roi", "pattern"),
    [
        ("0,0,0,10", r"--roi 0,0,0,10: x and y must be >= 0, width and height > 0"),
        ("-1,0,10,10", r"--roi -1,0,10,10: x and y must be >= 0"),
        ("0,0,500,500", r"--roi 0,0,500,500: reaches \(500, 500\), outside the 150x98 frame.*fits no video"),
        ("1,2,3", r"--roi: expected 4 comma-separated whole numbers"),
    ],
)
def test_bad_roi_is_refused_before_anything_is_written(tmp_path, roi, pattern):
    root = _dataset(tmp_path / "ds", n=2)
    _one_error(_cli(root, tmp_path / "store", *CLI_SMALL, "--roi", roi), pattern)
    assert not (tmp_path / "store").exists()
    with pytest.raises(ConfigError):
        extract(root, tmp_path / "store", ExtractConfig(**{**SMALL, "region": RegionConfig(tuple(int(v) for v in roi.split(",")), frames=8)}))
    assert not (tmp_path / "store").exists()


def test_roi_that_fits_some_videos_fails_only_the_others(tmp_path):
    root = tmp_path / "ds"
    _video(root / "big.mp4")
    write_test_video(root / "small.mp4", width=64, height=48, num_frames=N)
    _manifest(root, [("big", "p0", "big.mp4", "benign"), ("small", "p1", "small.mp4", "malignant")])
    summary = extract(root, tmp_path / "store", ExtractConfig(**{**SMALL, "region": RegionConfig((10, 10, 100, 60), frames=8)}))
    assert len(summary.failures) == 1 and "outside the 64x48 frame" in str(summary.failures[0])
    assert _stored(tmp_path / "store") == {"big": N}


@pytest.mark.parametrize("damage", ["truncated", "header only", "empty", "missing"])
def test_damaged_array_in_a_store_is_one_line_naming_it(tmp_path, damage):
    from usvid.training.frames import open_store

    root = _dataset(tmp_path / "ds", n=2)
    out = tmp_path / "store"
    extract(root, out, ExtractConfig(**SMALL))
    reference = _tree(out)
    path = out / "frames" / f"{file_stem('v1')}.npy"
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(
            {"truncated": data[: len(data) // 2], "header only": data[:128], "empty": b""}[damage]
        )
    with pytest.raises(
        InputError, match=rf"{path.name}: .*the store is damaged, re-run `usvid extract SRC"
    ) as info:
        open_store(out)
    assert "\n" not in str(info.value)
    # Re-extracting redoes that video alone, and the store is whole again.
    summary = extract(root, out, ExtractConfig(**SMALL))
    assert summary.extracted == 1 and summary.skipped == 1 and _tree(out) == reference


def test_store_damaged_while_open_is_one_line(tmp_path):
    root = _dataset(tmp_path / "ds", n=2)
    out = tmp_path / "store"
    extract(root, out, ExtractConfig(**SMALL))
    store = FrameStore(out)
    _cut(out / "frames" / f"{file_stem('v0')}.npy", 0.5)
    with pytest.raises(InputError, match="truncated .*re-run `usvid extract"):
        store.frames_of("v0")


def test_frame_size_limit_in_video_info():
    from usvid.video.reader import VideoInfo

    with pytest.raises(InputError, match="16000x16000 is over the limit"):
        VideoInfo(Path("a.mkv"), 16000, 16000, 1, 25.0, 0.04, "ffv1", "pyav")
    assert VideoInfo(Path("a.mp4"), 7680, 4320, 1, 25.0, 0.04, "h264", "pyav").width == 7680
