"""generate_dataset: the dataset format, sparse annotations drawn from the truth, class statistics,
determinism, reuse and atomic output."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from usvid.data.manifest import load_dataset
from usvid.errors import InputError
from usvid.synth import SynthConfig, generate_dataset
from usvid.synth.dataset import annotation_quotas

TINY = SynthConfig(patients=2, seconds=0.5, width=98, height=66, box_fraction=0.2, seed=3)


def test_files_and_manifest(small_set):
    summary, truth = small_set
    out = summary.out
    assert summary.manifest.is_file() and summary.annotations.is_file() and summary.ground_truth.is_file()
    dataset = load_dataset(out)
    assert len(dataset.videos) == summary.videos == len(truth["videos"])
    assert "/" + str(out).strip("/") not in summary.manifest.read_text(), "manifest paths are relative to OUT"
    per_patient = defaultdict(list)
    for video in dataset.videos:
        assert video.path.is_file() and video.path.parent == out.resolve() / "videos"
        per_patient[video.patient_id].append(video)
    assert len(per_patient) == summary.patients == 8
    for videos in per_patient.values():
        assert 1 <= len(videos) <= 3
        assert len({v.label for v in videos}) == 1
    patient_labels = [videos[0].label for videos in per_patient.values()]
    assert sorted(set(patient_labels)) == ["benign", "malignant", "normal"]
    assert patient_labels.count("normal") == 2, "normal_fraction 0.25 of 8 patients"


def test_ground_truth_format(small_set):
    summary, truth = small_set
    assert (truth["format"], truth["version"]) == ("usvid-ground-truth", 1)
    for entry in truth["videos"].values():
        assert (entry["width"], entry["height"], entry["fps"]) == (160, 120, 30.0)
        assert len(entry["boxes"]) == entry["num_frames"] == 30
        x, y, w, h = entry["scan_region"]
        assert 0 <= x and 0 <= y and x + w <= 160 and y + h <= 120
        for box in entry["boxes"]:
            if box is not None:
                bx, by, bw, bh = box
                assert x <= bx and y <= by and bx + bw <= x + w and by + bh <= y + h and bw > 0 and bh > 0
        if entry["label"] == "normal":
            assert all(b is None for b in entry["boxes"])
    assert summary.frames == sum(len(v["boxes"]) for v in truth["videos"].values())


def test_manifest_lesion_range_matches_truth(small_set):
    summary, truth = small_set
    for video in load_dataset(summary.out).videos:
        shown = [i for i, b in enumerate(truth["videos"][video.video_id]["boxes"]) if b is not None]
        assert (video.lesion_start, video.lesion_end) == ((shown[0], shown[-1]) if shown else (None, None))


def test_sparse_annotations_come_from_the_truth(small_set):
    summary, truth = small_set
    dataset = load_dataset(summary.out)
    annotated = sum(len(frames) for frames in dataset.boxes.values())
    assert annotated == summary.annotated_frames == round(0.1 * summary.frames)
    with_box = 0
    for video_id, frames in dataset.boxes.items():
        for index, boxes in frames.items():
            expected = truth["videos"][video_id]["boxes"][index]
            assert [[b.x, b.y, b.w, b.h] for b in boxes] == ([] if expected is None else [expected])
            with_box += bool(boxes)
    assert with_box == summary.annotated_boxes
    assert with_box >= 0.5 * annotated, "annotators mostly label frames that show the lesion"
    coco = json.loads(summary.annotations.read_text())
    assert coco["categories"] == [{"id": 1, "name": "lesion"}]


@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.3, 1.0])
def test_annotation_quotas_hit_the_fraction(fraction):
    frames = [30, 30, 45, 12, 30]
    quotas = annotation_quotas(frames, fraction, np.random.default_rng(0))
    assert sum(quotas) == round(fraction * sum(frames))
    assert all(0 <= q <= n for q, n in zip(quotas, frames, strict=True))


def test_class_shapes(small_set):
    """Benign lesions are wider than tall, malignant ones taller than wide (BI-RADS orientation)."""
    _, truth = small_set
    aspect = defaultdict(list)
    for entry in truth["videos"].values():
        boxes = [b for b in entry["boxes"] if b is not None]
        if boxes:
            aspect[entry["label"]].append(np.median([np.log(w / h) for _, _, w, h in boxes]))
    assert len(aspect["benign"]) >= 2 and len(aspect["malignant"]) >= 2
    assert np.mean(aspect["benign"]) > 0.2
    assert np.mean(aspect["malignant"]) < -0.1
    assert min(aspect["benign"]) > max(aspect["malignant"])


def test_same_seed_same_dataset(tmp_path, decode_grey):
    a = generate_dataset(tmp_path / "a", TINY)
    b = generate_dataset(tmp_path / "b", TINY)
    c = generate_dataset(tmp_path / "c", SynthConfig(**{**TINY.to_dict(), "seed": 4}))
    for name in ("manifest.csv", "annotations.json", "ground_truth.json"):
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes()
    assert (a.out / "ground_truth.json").read_bytes() != (c.out / "ground_truth.json").read_bytes()
    for video in sorted((a.out / "videos").iterdir()):
        assert np.array_equal(decode_grey(video), decode_grey(b.out / "videos" / video.name))


def test_rerun_reuses_or_regenerates(tmp_path):
    out = tmp_path / "out"
    first = generate_dataset(out, TINY)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "videos").iterdir()}
    again = generate_dataset(out, TINY)
    assert again.reused and not first.reused
    assert (again.videos, again.frames, again.annotated_frames) == (
        first.videos,
        first.frames,
        first.annotated_frames,
    )
    assert {p.name: p.stat().st_mtime_ns for p in (out / "videos").iterdir()} == stamps
    smaller = generate_dataset(out, SynthConfig(**{**TINY.to_dict(), "patients": 1}))
    assert not smaller.reused
    listed = {v.path.name for v in load_dataset(out).videos}
    assert {p.name for p in (out / "videos").iterdir()} == listed, "videos of the earlier run are removed"


def test_interrupted_run_leaves_no_partial_file(tmp_path):
    out = tmp_path / "out"

    def stop(description: str, done: int, total: int) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_dataset(out, SynthConfig(**{**TINY.to_dict(), "seconds": 1.0}), stop)
    assert sorted(p.name for p in out.iterdir()) == [".usvid-synth.json", "videos"], "only synth's marker"
    assert list((out / "videos").iterdir()) == [], "no half-written video under a final or temporary name"
    assert not generate_dataset(out, TINY).reused


def test_progress_reports_every_frame_by_the_end(tmp_path):
    seen = []
    summary = generate_dataset(tmp_path / "out", TINY, lambda d, done, total: seen.append((done, total)))
    assert seen[-1] == (summary.frames, summary.frames)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_bad_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="OUT .*file.*not a folder"):
        generate_dataset(blocker, TINY)
    with pytest.raises(InputError, match="OUT .*is a file, not a folder"):
        generate_dataset(blocker / "sub", TINY)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="notes.txt"):
        generate_dataset(tmp_path / "mine", TINY)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"], (
        "a refused folder is left as it was"
    )
