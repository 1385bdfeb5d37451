"""The dataset format that ``usvid synth`` writes and ``usvid extract`` reads.

A dataset is a folder (the *root*) holding:

- ``manifest.csv``: one row per video with at least ``video_id, patient_id, path, label``;
  optional ``lesion_start, lesion_end`` (first/last frame index showing a lesion, empty if none).
  ``path`` is relative to the root and must stay inside it.
- ``annotations.json`` (optional): COCO-style sparse lesion boxes. One ``images`` entry per annotated
  frame with ``video_id`` and ``frame_index``; one category ``lesion``; ``bbox`` is ``[x, y, w, h]`` in
  source-frame pixels. An annotated frame with no box entry is an explicit "no lesion" frame.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from usvid.errors import InputError
from usvid.io import write_json_atomic, write_text_atomic

MANIFEST_NAME = "manifest.csv"
ANNOTATIONS_NAME = "annotations.json"
REQUIRED_COLUMNS = ("video_id", "patient_id", "path", "label")
LESION_CATEGORY = "lesion"


@dataclass(frozen=True)
class Box:
    """A lesion box in pixels: top-left corner ``(x, y)``, width ``w``, height ``h``."""

    x: float
    y: float
    w: float
    h: float

    def as_xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)


@dataclass(frozen=True)
class VideoEntry:
    """One row of ``manifest.csv``; ``path`` is resolved to an absolute path under the root."""

    video_id: str
    patient_id: str
    path: Path
    label: str
    lesion_start: int | None = None
    lesion_end: int | None = None


@dataclass
class Dataset:
    """A manifest with its annotations: ``boxes[video_id][frame_index]`` lists that frame's boxes."""

    root: Path
    videos: list[VideoEntry]
    boxes: dict[str, dict[int, list[Box]]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return sorted({v.label for v in self.videos})


def resolve_under(root: Path, relative: str, where: str) -> Path:
    """Resolve ``relative`` inside ``root``; refuse absolute paths and ``..`` escapes."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise InputError(f"{where}: path '{relative}' points outside the dataset root {root}")
    return candidate


def _optional_int(value: str | None, where: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{where}: expected a whole number, got '{value}'") from None


def read_manifest(path: str | Path) -> list[VideoEntry]:
    """Read and validate ``manifest.csv`` (duplicate ids, a patient with two labels, escaping paths)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}")
        rows = list(reader)
    entries, seen, patient_label = [], set(), {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        vid, pid, label = row["video_id"].strip(), row["patient_id"].strip(), row["label"].strip()
        if not vid or not pid or not label or not row["path"].strip():
            raise InputError(f"{where}: video_id, patient_id, path and label must not be empty")
        if vid in seen:
            raise InputError(f"{where}: duplicate video_id '{vid}'; video ids must be unique")
        seen.add(vid)
        if patient_label.setdefault(pid, label) != label:
            raise InputError(
                f"{where}: patient '{pid}' has two labels ('{patient_label[pid]}' and '{label}'); "
                "one label per patient is required"
            )
        entries.append(
            VideoEntry(
                video_id=vid,
                patient_id=pid,
                path=resolve_under(path.parent, row["path"].strip(), where),
                label=label,
                lesion_start=_optional_int(row.get("lesion_start"), where),
                lesion_end=_optional_int(row.get("lesion_end"), where),
            )
        )
    if not entries:
        raise InputError(f"{path}: manifest has no videos")
    return entries


def read_annotations(path: str | Path, video_ids: set[str] | None = None) -> dict[str, dict[int, list[Box]]]:
    """Read COCO-style ``annotations.json`` into ``{video_id: {frame_index: [Box, ...]}}``.

    Every annotated image appears (with an empty list when it has no box). Negative or zero-size boxes
    and images of unknown videos are errors naming the file and the entry.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: annotations file not found") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    boxes: dict[str, dict[int, list[Box]]] = defaultdict(dict)
    image_key: dict[int, tuple[str, int]] = {}
    for img in coco.get("images", []):
        try:
            vid, idx = str(img["video_id"]), int(img["frame_index"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: image {img.get('id')} needs 'video_id' and 'frame_index'") from None
        if video_ids is not None and vid not in video_ids:
            raise InputError(f"{path}: image {img.get('id')} refers to unknown video_id '{vid}'")
        if idx < 0:
            raise InputError(f"{path}: image {img.get('id')} has negative frame_index {idx}")
        image_key[img["id"]] = (vid, idx)
        boxes[vid].setdefault(idx, [])
    for ann in coco.get("annotations", []):
        key = image_key.get(ann.get("image_id"))
        if key is None:
            raise InputError(f"{path}: annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise InputError(f"{path}: annotation {ann.get('id')} needs bbox [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            raise InputError(f"{path}: annotation {ann.get('id')} has a negative or zero-size box {bbox}")
        boxes[key[0]][key[1]].append(Box(x, y, w, h))
    return dict(boxes)


def load_dataset(manifest: str | Path) -> Dataset:
    """Read ``manifest.csv`` and, when it exists beside it, ``annotations.json``."""
    manifest = Path(manifest)
    if manifest.is_dir():
        manifest = manifest / MANIFEST_NAME
    videos = read_manifest(manifest)
    ann_path = manifest.parent / ANNOTATIONS_NAME
    boxes = read_annotations(ann_path, {v.video_id for v in videos}) if ann_path.exists() else {}
    return Dataset(root=manifest.parent.resolve(), videos=videos, boxes=boxes)


def write_manifest(path: str | Path, videos: list[VideoEntry], root: str | Path) -> None:
    """Write ``manifest.csv`` atomically with paths relative to ``root``."""
    root = Path(root).resolve()
    lines = ["video_id,patient_id,path,label,lesion_start,lesion_end"]
    for v in videos:
        rel = Path(v.path).resolve().relative_to(root).as_posix()
        start = "" if v.lesion_start is None else str(v.lesion_start)
        end = "" if v.lesion_end is None else str(v.lesion_end)
        lines.append(f"{v.video_id},{v.patient_id},{rel},{v.label},{start},{end}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def write_annotations(
    path: str | Path, frames: dict[str, dict[int, list[Box]]], sizes: dict[str, tuple[int, int]]
) -> None:
    """Write COCO-style annotations; ``sizes[video_id]`` is ``(width, height)`` of that video's frames."""
    images, annotations = [], []
    for vid in sorted(frames):
        for idx in sorted(frames[vid]):
            image_id = len(images) + 1
            w, h = sizes[vid]
            images.append(
                {"id": image_id, "file_name": f"{vid}/{idx:06d}", "video_id": vid, "frame_index": idx,
                 "width": w, "height": h}
            )
            for box in frames[vid][idx]:
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                     "bbox": [round(box.x, 2), round(box.y, 2), round(box.w, 2), round(box.h, 2)],
                     "area": round(box.w * box.h, 2), "iscrowd": 0}
                )
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": LESION_CATEGORY}]}
    write_json_atomic(path, coco)
