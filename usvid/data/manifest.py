"""The dataset format that ``usvid synth`` writes and ``usvid extract`` reads.

A dataset is a folder (the *root*) holding:

- ``manifest.csv``: one row per video with at least ``video_id, patient_id, path, label``;
  optional ``lesion_start, lesion_end`` (first/last frame index showing a lesion, empty if none).
  ``path`` is relative to the root and must stay inside it.
- ``annotations.json`` (optional): COCO-style sparse lesion boxes. One ``images`` entry per annotated
  frame with ``video_id`` and ``frame_index``; one category ``lesion``; ``bbox`` is ``[x, y, w, h]`` in
  source-frame pixels. An annotated frame with no box entry is an explicit "no lesion" frame. Boxes of other
  categories (a caliper, a text box) are skipped and counted, never read as lesions.

Labels are compared case-insensitively and stored in lower case (``Benign`` beside ``benign`` is one class,
with a warning naming the rows), so a spelling never becomes a class of its own.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from usvid.boxes import Box
from usvid.errors import InputError
from usvid.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
ANNOTATIONS_NAME = "annotations.json"
REQUIRED_COLUMNS = ("video_id", "patient_id", "path", "label")
LESION_CATEGORY = "lesion"


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
    """Resolve ``relative`` inside ``root``; refuse absolute paths, ``..`` escapes and NUL bytes."""
    if "\x00" in relative:
        raise InputError(f"{where}: path {relative!r} contains a NUL byte; fix the manifest")
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


def _note(notes: list[Problem] | None, where: object, message: str) -> None:
    """A warning: the input was used, but not as written. Appended to ``notes``, or logged without it."""
    problem = Problem(str(where), message)
    if notes is None:
        log.warning("%s", problem)
    else:
        notes.append(problem)


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


def read_csv_rows(path: Path, required: Sequence[str], hint: str = "") -> list[dict[str, str]]:
    """The rows of a CSV file with a header holding ``required`` (names stripped), or one clear error.

    ``hint`` ends the missing-column message (what such a file looks like).
    """
    # utf-8-sig: spreadsheet programs start a CSV with a byte-order mark, which would hide the first column.
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            missing = [c for c in required if c not in columns]
            if missing:
                raise InputError(
                    f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(columns) or 'none'}); "
                    f"{hint or 'need ' + ', '.join(required)}"
                )
            return list(reader)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except csv.Error as err:
        raise InputError(f"{path}: not a readable CSV file ({err})") from None


def read_manifest(
    path: str | Path, errors: list[Problem] | None = None, notes: list[Problem] | None = None
) -> list[VideoEntry]:
    """Read and validate ``manifest.csv`` (duplicate ids, a patient with two labels, escaping paths).

    By default the first bad row raises ``InputError``. With ``errors`` (collect-errors mode) each bad row
    is appended to it as a :class:`Problem` and left out, and so is every video of a patient with two
    labels; a missing file or column and a manifest without rows still raise. Labels are lower-cased; a
    label written otherwise is a warning, appended to ``notes`` (logged without it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    rows = read_csv_rows(path, REQUIRED_COLUMNS)
    if not rows:
        raise InputError(f"{path}: manifest has no videos")
    entries: list[VideoEntry] = []
    first_line: dict[str, int] = {}
    labels: dict[str, dict[str, str]] = defaultdict(dict)  # patient -> {label: first video with it}
    placed, reported = [], set()
    spellings: dict[str, list[int]] = defaultdict(list)  # a label not in lower case -> its lines
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        vid, pid, label, rel = (
            str(row.get(c) or "").strip() for c in ("video_id", "patient_id", "label", "path")
        )
        if label != label.lower():
            spellings[label].append(line)
            label = label.lower()
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
    for spelling, lines in sorted(spellings.items()):
        shown = ", ".join(map(str, lines[:5])) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
        on_lines = f" (lines {shown})" if len(lines) > 1 else ""
        _note(
            notes,
            f"{path}:{lines[0]}",
            f"label '{spelling}' read as '{spelling.lower()}'{on_lines}; labels are compared case-insensitively, "
            "write them in lower case to silence this",
        )
    return [e for e in entries if len(labels[e.patient_id]) == 1]


def _entries(coco: dict, key: str, path: Path) -> list[dict]:
    """``coco[key]`` as a list of objects; anything else is a structural fault of the whole file."""
    value = coco.get(key, [])
    if not isinstance(value, list):
        raise InputError(
            f"{path}: '{key}' is {_short(value)}, not a list; a COCO annotations file has lists 'images', "
            "'annotations' and 'categories' of objects"
        )
    for k, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise InputError(
                f"{path}: {key}[{k}] is {_short(entry)}, not an object such as "
                f"{_EXAMPLES[key]}; fix the file"
            )
    return value


_EXAMPLES = {
    "images": '{"id": 1, "video_id": "v1", "frame_index": 0}',
    "annotations": '{"id": 1, "image_id": 1, "category_id": 1, "bbox": [x, y, w, h]}',
    "categories": '{"id": 1, "name": "lesion"}',
}


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _category_ids(coco: dict, path: Path, category: str) -> tuple[set[object] | None, dict[object, str]]:
    """The ids of ``category`` (None: the file names no categories, so every box is a lesion box) and all names."""
    categories = _entries(coco, "categories", path)
    names = {_key(c.get("id")): str(c.get("name", "")).strip() for c in categories}
    if not categories:
        return None, names
    wanted = {cid for cid, name in names.items() if name.lower() == category.lower()}
    if not wanted:
        found = ", ".join(f"'{n}'" for n in sorted(set(names.values()))) or "none"
        raise InputError(
            f"{path}: no category named '{category}' (categories: {found}); name the lesion category with "
            "--category NAME"
        )
    return wanted, names


def read_annotations(
    path: str | Path,
    video_ids: set[str] | None = None,
    errors: list[Problem] | None = None,
    *,
    category: str = LESION_CATEGORY,
    notes: list[Problem] | None = None,
) -> dict[str, dict[int, list[Box]]]:
    """Read COCO-style ``annotations.json`` into ``{video_id: {frame_index: [Box, ...]}}``.

    Every annotated image appears (with an empty list when it has no box). Only boxes of ``category`` are
    read; boxes of other categories are skipped and counted in one warning (appended to ``notes``, logged
    without it). A file that names no categories is read as all lesion boxes. Negative, zero-size or
    non-finite boxes and images of unknown videos are errors naming the file and the entry. With ``errors``
    (collect-errors mode) each bad entry is appended to it as a :class:`Problem` and skipped; a missing,
    unreadable or structurally wrong file (``"images": 5``, an entry that is not an object) still raises.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"{path}: annotations file not found") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(coco, dict):
        raise InputError(
            f"{path}: not a COCO annotations file (expected an object with 'images', 'annotations', got "
            f"{_short(coco)})"
        )
    images, annotations = _entries(coco, "images", path), _entries(coco, "annotations", path)
    wanted, names = _category_ids(coco, path, category)
    boxes: dict[str, dict[int, list[Box]]] = defaultdict(dict)
    image_key: dict[object, tuple[str, int]] = {}
    for img in images:
        try:
            raw = img["frame_index"]
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)  # 3.5 is no frame; int() would quietly make it 3
            vid, idx = str(img["video_id"]), int(raw)
        except (KeyError, TypeError, ValueError, OverflowError):
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
        image_key[_key(img.get("id"))] = (vid, idx)
        boxes[vid].setdefault(idx, [])
    skipped: Counter[str] = Counter()
    for ann in annotations:
        key = image_key.get(_key(ann.get("image_id")))
        if key is None:
            _report(
                errors, path, f"annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}"
            )
            continue
        # One declared category and no category_id: the box can only be of that category.
        cid = _key(ann.get("category_id", next(iter(names)) if len(names) == 1 else None))
        if wanted is not None and cid not in wanted:
            skipped[names.get(cid, f"category_id {cid} (not in categories)")] += 1
            continue
        box = _box(ann, key, path, errors)
        if box is not None:
            boxes[key[0]][key[1]].append(box)
    if skipped:
        listed = ", ".join(f"{name}: {n}" for name, n in sorted(skipped.items()))
        _note(
            notes,
            path,
            f"{sum(skipped.values())} box(es) of other categories skipped ({listed}); only '{category}' boxes are "
            "read (choose the category with --category NAME)",
        )
    return dict(boxes)


def _key(value: object) -> object:
    """An id usable as a dict key: a list or object given as an id is compared by its JSON text."""
    return value if isinstance(value, (str, int, float, type(None))) else json.dumps(value, sort_keys=True)


def _box(ann: dict, key: tuple[str, int], path: Path, errors: list[Problem] | None) -> Box | None:
    """The annotation's box, or None after reporting why it is not one (not 4 numbers, NaN, zero size)."""
    bbox = ann.get("bbox")
    try:
        values = [float(v) for v in bbox] if isinstance(bbox, list) and not any(isinstance(v, bool) for v in bbox) else []
    except (TypeError, ValueError, OverflowError):
        values = []
    if len(values) != 4:
        _report(errors, path, f"annotation {ann.get('id')} needs bbox [x, y, w, h], got {_short(bbox)}", key[0])
        return None
    x, y, w, h = values
    if not all(math.isfinite(v) for v in values):
        _report(
            errors,
            path,
            f"annotation {ann.get('id')} has a non-finite box {values} (video '{key[0]}', frame {key[1]}); "
            "every value must be a number",
            key[0],
        )
        return None
    if w <= 0 or h <= 0:
        _report(
            errors,
            path,
            f"annotation {ann.get('id')} has a negative or zero-size box {bbox} (video '{key[0]}', frame "
            f"{key[1]}); width and height must be > 0",
            key[0],
        )
        return None
    return Box(x, y, w, h)


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
