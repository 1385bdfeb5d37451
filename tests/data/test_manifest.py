"""The dataset format: manifest.csv + COCO annotations, validated with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usvid.boxes import Box
from usvid.data.manifest import VideoEntry, load_dataset, read_annotations, write_annotations, write_manifest
from usvid.errors import InputError


def _write(root: Path, text: str) -> Path:
    path = root / "manifest.csv"
    path.write_text(text)
    return path


def test_round_trip(tmp_path):
    videos = [
        VideoEntry("v1", "p1", tmp_path / "a" / "v1.mp4", "benign", 3, 9),
        VideoEntry("v2", "p2", tmp_path / "v2.mp4", "malignant"),
    ]
    write_manifest(tmp_path / "manifest.csv", videos, tmp_path)
    write_annotations(tmp_path / "annotations.json", {"v1": {4: [Box(1, 2, 3, 4)], 7: []}}, {"v1": (30, 20)})
    ds = load_dataset(tmp_path)
    assert [v.video_id for v in ds.videos] == ["v1", "v2"]
    assert ds.videos[0].path == (tmp_path / "a" / "v1.mp4").resolve()
    assert (ds.videos[0].lesion_start, ds.videos[0].lesion_end) == (3, 9)
    assert ds.videos[1].lesion_start is None
    assert ds.boxes == {"v1": {4: [Box(1.0, 2.0, 3.0, 4.0)], 7: []}}
    assert ds.labels == ["benign", "malignant"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("video_id,patient_id,path\n", "missing column"),
        ("video_id,patient_id,path,label\nv1,p1,a.mp4,benign\nv1,p2,b.mp4,benign\n", "duplicate video_id 'v1'"),
        ("video_id,patient_id,path,label\nv1,p1,a.mp4,benign\nv2,p1,b.mp4,malignant\n", "patient 'p1' has two labels"),
        ("video_id,patient_id,path,label\nv1,p1,../outside.mp4,benign\n", "outside the dataset root"),
        ("video_id,patient_id,path,label\nv1,p1,/etc/passwd,benign\n", "outside the dataset root"),
        ("video_id,patient_id,path,label\n", "no videos"),
        ("video_id,patient_id,path,label,lesion_start\nv1,p1,a.mp4,benign,x\n", "whole number"),
    ],
)
def test_bad_manifests_name_file_and_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=message) as info:
        load_dataset(path)
    assert str(path) in str(info.value)


def test_bad_annotations(tmp_path):
    coco = {
        "images": [{"id": 1, "video_id": "v1", "frame_index": 2}],
        "annotations": [{"id": 5, "image_id": 1, "bbox": [1, 1, 0, 4]}],
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(InputError, match="annotation 5 has a negative or zero-size box"):
        read_annotations(path)
    with pytest.raises(InputError, match="unknown video_id 'v1'"):
        read_annotations(path, {"v9"})
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_annotations(path)
