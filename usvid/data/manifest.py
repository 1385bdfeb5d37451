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


@dataclass(frozen=True)
class Problem:
    """A fault found in collect-errors mode: where (``file:line`` or file), what, and the video it fails.

    ``video_id`` is None when the problem drops a row or entry without failing a listed video (an empty
    or duplicate row, an annotation of an unknown video or image).
    """

    where: str
    message: str
    video_id: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _report(errors: list[Problem] | None, where: object, message: str, video_id: str | None = None) -> None:
    """Raise ``InputError`` (default mode) or append the problem to ``errors`` (collect-errors mode)."""
    problem = Problem(str(where), message, video_id)
    if errors is None:
        raise InputError(str(problem))
    errors.append(problem)


def _optional_int(value: str | None, where: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{where}: expected a whole number, got '{value}'") from None


def _two_labels(patient: str, labels: dict[str, str]) -> str:
    seen = ", ".join(f"'{label}' ({vid})" for label, vid in sorted(labels.items()))
    return f"patient '{patient}' has two labels: {seen}; one label per patient is required, fix the manifest"


def read_manifest(path: str | Path, errors: list[Problem] | None = None) -> list[VideoEntry]:
    """Read and validate ``manifest.csv`` (duplicate ids, a patient with two labels, escaping paths).

    By default the first bad row raises ``InputError``. With ``errors`` (collect-errors mode) each bad row
    is appended to it as a :class:`Problem` and left out, and so is every video of a patient with two
    labels; a missing file or column and a manifest without rows still raise.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}"
            )
        rows = list(reader)
    if not rows:
        raise InputError(f"{path}: manifest has no videos")
    entries: list[VideoEntry] = []
    first_line: dict[str, int] = {}
    labels: dict[str, dict[str, str]] = defaultdict(dict)  # patient -> {label: first video with it}
    placed, reported = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        vid, pid, label, rel = (
            str(row.get(c) or "").strip() for c in ("video_id", "patient_id", "label", "path")
        )
        if not (vid and pid and label and rel):
            _report(errors, where, "video_id, patient_id, path and label must not be empty")
            continue
        if vid in first_line:
            _report(
                errors,
                where,
                f"duplicate video_id '{vid}' (first on line {first_line[vid]}); video ids must be unique",
            )
            continue
        first_line[vid] = line
        placed.append((where, vid, pid))
        if label not in labels[pid]:
            labels[pid][label] = vid
            if len(labels[pid]) > 1:  # the row that brings a second label: where the default mode stops
                reported.add(vid)
                _report(errors, where, _two_labels(pid, labels[pid]), vid)
                continue
        try:
            entry = VideoEntry(
                video_id=vid,
                patient_id=pid,
                path=resolve_under(path.parent, rel, where),
                label=label,
                lesion_start=_optional_int(row.get("lesion_start"), where),
                lesion_end=_optional_int(row.get("lesion_end"), where),
            )
        except InputError as err:
            if errors is None:
                raise
            errors.append(Problem(where, str(err).removeprefix(f"{where}: "), vid))
            continue
        entries.append(entry)
    for where, vid, pid in placed:
        if len(labels[pid]) > 1 and vid not in reported:
            _report(errors, where, _two_labels(pid, labels[pid]), vid)
    return [e for e in entries if len(labels[e.patient_id]) == 1]


def read_annotations(
    path: str | Path, video_ids: set[str] | None = None, errors: list[Problem] | None = None
) -> dict[str, dict[int, list[Box]]]:
    """Read COCO-style ``annotations.json`` into ``{video_id: {frame_index: [Box, ...]}}``.

    Every annotated image appears (with an empty list when it has no box). Negative or zero-size boxes
    and images of unknown videos are errors naming the file and the entry. With ``errors``
    (collect-errors mode) each bad entry is appended to it as a :class:`Problem` and skipped; a missing or
    unreadable file still raises.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: annotations file not found") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(coco, dict):
        raise InputError(
            f"{path}: not a COCO annotations file (expected an object with 'images', 'annotations')"
        )
    boxes: dict[str, dict[int, list[Box]]] = defaultdict(dict)
    image_key: dict[object, tuple[str, int]] = {}
    for img in coco.get("images", []):
        try:
            vid, idx = str(img["video_id"]), int(img["frame_index"])
        except (KeyError, TypeError, ValueError):
            _report(errors, path, f"image {img.get('id')} needs 'video_id' and 'frame_index'")
            continue
        if video_ids is not None and vid not in video_ids:
            _report(errors, path, f"image {img.get('id')} refers to unknown video_id '{vid}'")
            continue
        if idx < 0:
            _report(
                errors, path, f"image {img.get('id')} of video '{vid}' has negative frame_index {idx}", vid
            )
            continue
        image_key[img.get("id")] = (vid, idx)
        boxes[vid].setdefault(idx, [])
    for ann in coco.get("annotations", []):
        key = image_key.get(ann.get("image_id"))
        if key is None:
            _report(
                errors, path, f"annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}"
            )
            continue
        bbox = ann.get("bbox")
        try:
            x, y, w, h = (float(v) for v in bbox) if isinstance(bbox, list) else ()
        except (TypeError, ValueError):
            _report(errors, path, f"annotation {ann.get('id')} needs bbox [x, y, w, h], got {bbox!r}", key[0])
            continue
        if w <= 0 or h <= 0:
            _report(
                errors,
                path,
                f"annotation {ann.get('id')} has a negative or zero-size box {bbox} (video '{key[0]}', frame "
                f"{key[1]}); width and height must be > 0",
                key[0],
            )
            continue
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
