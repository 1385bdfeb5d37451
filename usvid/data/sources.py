"""What ``usvid extract`` reads: a dataset manifest, a BUSI-style image folder, or one video.

Unlike :func:`usvid.data.manifest.load_dataset` (which stops at the first problem), these readers collect
problems per video, so one bad row or annotation fails that video with a clear message and the others
still extract: duplicate video ids, a patient with two labels, a path outside the dataset or missing,
bad boxes, annotations of unknown videos.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from usvid.data.manifest import ANNOTATIONS_NAME, MANIFEST_NAME, REQUIRED_COLUMNS, Box, resolve_under
from usvid.errors import InputError
from usvid.video.reader import IMAGE_SUFFIXES

UNKNOWN_LABEL = "unknown"


@dataclass(frozen=True)
class Failure:
    """One thing that went wrong: the file (and line or entry) and what to do about it."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass(frozen=True)
class SourceItem:
    """One video (or still image) to extract.

    ``boxes`` maps annotated source-frame indices to their lesion boxes (source pixels; an empty list is an
    explicit "no lesion" frame). ``mask_paths`` (BUSI) are mask images of frame 0, unioned.
    """

    video_id: str
    patient_id: str
    label: str
    path: Path
    source: str
    still: bool = False
    boxes: dict[int, list[Box]] = field(default_factory=dict)
    mask_paths: tuple[Path, ...] = ()
    annotated_masks: bool = False


@dataclass
class SourceList:
    kind: str
    root: Path
    items: list[SourceItem]
    failures: list[Failure]


def _label_conflicts(rows: list[tuple[str, str, str, str]]) -> dict[str, str]:
    """``{video_id: message}`` for every video of a patient that has two labels."""
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    for _, vid, pid, label in rows:
        labels[pid].setdefault(label, vid)
    bad = {}
    for _, vid, pid, _label in rows:
        if len(labels[pid]) > 1:
            seen = ", ".join(f"'{lab}' ({v})" for lab, v in sorted(labels[pid].items()))
            bad[vid] = (
                f"patient '{pid}' has two labels: {seen}; one label per patient is required, fix the manifest"
            )
    return bad


def read_manifest_source(manifest: Path) -> SourceList:
    if not manifest.is_file():
        raise InputError(f"{manifest}: manifest not found")
    root = manifest.parent.resolve()
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"{manifest}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}"
            )
        raw = list(reader)
    failures: list[Failure] = []
    rows, first_line = [], {}
    for line, row in enumerate(raw, start=2):
        where = f"{manifest}:{line}"
        vid, pid, label, rel = (
            str(row.get(c) or "").strip() for c in ("video_id", "patient_id", "label", "path")
        )
        if not (vid and pid and label and rel):
            failures.append(
                Failure(where, "video_id, patient_id, path and label must not be empty; row skipped")
            )
            continue
        if vid in first_line:
            failures.append(
                Failure(
                    where,
                    f"duplicate video_id '{vid}' (first on line {first_line[vid]}); "
                    "video ids must be unique, row skipped",
                )
            )
            continue
        first_line[vid] = line
        rows.append((where, vid, pid, label, rel))
    conflicts = _label_conflicts([(w, v, p, lab) for w, v, p, lab, _ in rows])
    boxes, ann_failures = read_annotations_lenient(root / ANNOTATIONS_NAME, {r[1] for r in rows})
    failures.extend(ann_failures.pop("", []))
    items = []
    for where, vid, pid, label, rel in rows:
        if vid in conflicts:
            failures.append(Failure(where, conflicts[vid]))
            continue
        if vid in ann_failures:
            failures.extend(ann_failures[vid])
            continue
        try:
            path = resolve_under(root, rel, where)
        except InputError as err:
            failures.append(Failure(where, str(err).split(": ", 1)[-1]))
            continue
        items.append(SourceItem(vid, pid, label, path, source=rel, boxes=boxes.get(vid, {})))
    return SourceList("manifest", root, items, failures)


def read_annotations_lenient(
    path: Path, video_ids: set[str]
) -> tuple[dict[str, dict[int, list[Box]]], dict[str, list[Failure]]]:
    """COCO boxes per video, and failures keyed by video id (``""``: not tied to a known video)."""
    boxes: dict[str, dict[int, list[Box]]] = defaultdict(dict)
    failures: dict[str, list[Failure]] = defaultdict(list)
    if not path.exists():
        return {}, {}
    try:
        coco = json.loads(path.read_text())
        images, annotations = list(coco.get("images", [])), list(coco.get("annotations", []))
    except (json.JSONDecodeError, AttributeError, TypeError) as err:
        raise InputError(f"{path}: not a valid COCO annotations file ({err})") from None
    image_key: dict[object, tuple[str, int]] = {}
    for img in images:
        try:
            vid, idx = str(img["video_id"]), int(img["frame_index"])
        except (KeyError, TypeError, ValueError):
            failures[""].append(
                Failure(str(path), f"image {img.get('id')} needs 'video_id' and 'frame_index'")
            )
            continue
        if vid not in video_ids:
            failures[""].append(
                Failure(str(path), f"image {img.get('id')} refers to unknown video_id '{vid}'; ignored")
            )
            continue
        if idx < 0:
            failures[vid].append(
                Failure(str(path), f"image {img.get('id')} of video '{vid}' has negative frame_index {idx}")
            )
            continue
        image_key[img.get("id")] = (vid, idx)
        boxes[vid].setdefault(idx, [])
    for ann in annotations:
        key = image_key.get(ann.get("image_id"))
        if key is None:
            failures[""].append(
                Failure(
                    str(path), f"annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}"
                )
            )
            continue
        bbox = ann.get("bbox")
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            failures[key[0]].append(
                Failure(str(path), f"annotation {ann.get('id')} needs bbox [x, y, w, h], got {bbox!r}")
            )
            continue
        if w <= 0 or h <= 0:
            failures[key[0]].append(
                Failure(
                    str(path),
                    f"annotation {ann.get('id')} (video '{key[0]}', frame {key[1]}) has a negative or zero-size "
                    f"box {bbox}; width and height must be > 0",
                )
            )
            continue
        boxes[key[0]][key[1]].append(Box(x, y, w, h))
    return dict(boxes), dict(failures)


def single_video_source(path: Path) -> SourceList:
    vid = path.stem if path.is_file() else path.name
    item = SourceItem(vid, vid, UNKNOWN_LABEL, path.resolve(), source=path.name)
    return SourceList("video", path.parent.resolve(), [item], [])


def is_busi_folder(folder: Path) -> bool:
    """Class sub-folders holding images with ``*_mask*.png`` beside them."""
    return any(
        sub.is_dir() and any(p.name.endswith(".png") and "_mask" in p.stem for p in sub.iterdir())
        for sub in folder.iterdir()
    )


def list_sources(src: str | Path) -> SourceList:
    """Work out what ``src`` is and list its videos (see the module docstring)."""
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_file() and src.name.endswith(".csv"):
        return read_manifest_source(src)
    if src.is_dir():
        if (src / MANIFEST_NAME).is_file():
            return read_manifest_source(src / MANIFEST_NAME)
        if is_busi_folder(src):
            from usvid.data.busi import read_busi

            return read_busi(src)
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in src.iterdir()):
            return single_video_source(src)
        raise InputError(
            f"{src}: not a dataset: expected {MANIFEST_NAME}, BUSI-style class folders (<class>/<name>.png with "
            "<name>_mask.png) or frame images"
        )
    return single_video_source(src)
