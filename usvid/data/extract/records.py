"""A video's record in the store: its ``videos.csv`` row, its ``frames.csv`` rows, and the files that hold them.

Rows are built from :class:`VideoRow` and :class:`FrameRow`, whose :meth:`to_row` is the one place their
columns and value formats are written (``usvid.data.store`` reads them). A record (``records/<file>.json``)
is ``{"video": row, "frames": [row, ...], "warnings"?: [...], "inputs": digest}``; read back, it stays the
plain dict it is in the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from usvid.boxes import Box
from usvid.data.sources import SourceItem, file_signature
from usvid.data.store import array_problem, format_boxes, stored_corners
from usvid.io import write_text_atomic
from usvid.video.roi import ScanRegion

RECORD_NAME = re.compile(r"^(?P<file>[A-Za-z0-9-][A-Za-z0-9._-]*-[0-9a-f]{8})\.(?:json|npy)$")  # what file_stem names, nothing else
ENDED_EARLY = "ended_early"  # warning code: decoding stopped before the container's declared end


def file_stem(video_id: str) -> str:
    """A file-system-safe, collision-free name for a video id (ids may hold spaces, slashes, brackets)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("._")[:80] or "video"
    return f"{safe}-{hashlib.sha1(video_id.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class FrameRow:
    """One stored frame: a row of ``frames.csv``.

    Attributes:
        frame_index, seconds: the source frame and its time from the first frame.
        store_index: its place in the video's ``frames/<file>.npy``.
        boxes: lesion boxes in stored pixels (annotated frames only); written as their corners.
        mask_index: its lesion mask's place in ``masks/<file>.npy``, -1 for none.
    """

    item: SourceItem
    split: str
    frame_index: int
    seconds: float
    store_index: int
    annotated: bool
    boxes: tuple[Box, ...] = ()
    mask_index: int = -1

    def to_row(self) -> dict:
        boxes = self.boxes
        if boxes:
            x0s, y0s, x1s, y1s = zip(*(stored_corners(b) for b in boxes))
            union = (min(x0s), min(y0s), max(x1s), max(y1s))
        else:
            union = ("", "", "", "")
        return {
            "video_id": self.item.video_id,
            "patient_id": self.item.patient_id,
            "frame_index": self.frame_index,
            "timestamp": round(self.seconds, 6),
            "label": self.item.label,
            "split": self.split,
            "has_box": int(bool(boxes)),
            "x0": union[0],
            "y0": union[1],
            "x1": union[2],
            "y1": union[3],
            "store_index": self.store_index,
            "annotated": int(self.annotated),
            "num_boxes": len(boxes),
            "boxes": format_boxes(list(boxes)),
            "mask_index": self.mask_index,
        }


@dataclass(frozen=True)
class VideoRow:
    """One extracted video: a row of ``videos.csv``."""

    item: SourceItem
    split: str
    region: ScanRegion
    num_frames: int
    fps: float
    width: int
    height: int
    stored_frames: int
    deduped: int
    file: str

    def to_row(self) -> dict:
        item, r = self.item, self.region
        meta = json.dumps(item.meta, sort_keys=True, separators=(",", ":")) if item.meta else ""
        return {
            "video_id": item.video_id,
            "patient_id": item.patient_id,
            "label": item.label,
            "split": self.split,
            "source": item.source,
            "roi_x": r.x,
            "roi_y": r.y,
            "roi_w": r.w,
            "roi_h": r.h,
            "num_frames": self.num_frames,
            "fps": round(self.fps, 6),
            "roi_method": r.method,
            "width": self.width,
            "height": self.height,
            "stored_frames": self.stored_frames,
            "deduped": self.deduped,
            "file": self.file,
            "dataset": item.dataset,
            "meta": meta,
        }


@dataclass(frozen=True)
class VideoRecord:
    """What extracting one video made: its rows and the warnings about it (``{code, video_id, file, message}``)."""

    video: VideoRow
    frames: tuple[FrameRow, ...]
    warnings: tuple[dict, ...] = ()

    def to_dict(self, inputs: str) -> dict:
        """The record as stored, with the digest of the inputs it was made from (:func:`inputs_digest`)."""
        record = {"video": self.video.to_row(), "frames": [f.to_row() for f in self.frames]}
        if self.warnings:
            record["warnings"] = list(self.warnings)
        record["inputs"] = inputs
        return record


def warning(code: str, item: SourceItem, message: str) -> dict:
    """A warning about one video, as records and the summary carry it."""
    return {"code": code, "video_id": item.video_id, "file": str(item.path), "message": message}


def inputs_digest(item: SourceItem) -> str:
    """What a video's record was extracted from: the listing's item (row, label, boxes) and its files' signatures."""
    described = {
        "item": asdict(item),
        "files": [file_signature(item.path), *(file_signature(p) for p in item.mask_paths)],
    }
    return hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def write_record(out: Path, file: str, record: dict) -> None:
    # Compact JSON: the C encoder (indent forces the slow pure-Python one; records hold every frame).
    write_text_atomic(out / "records" / f"{file}.json", json.dumps(record, separators=(",", ":")) + "\n")


def read_record(out: Path, file: str) -> dict | None:
    path = out / "records" / f"{file}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # missing, or damaged by hand: extracted again
    ok = isinstance(record, dict) and isinstance(record.get("video"), dict) and isinstance(record.get("frames"), list)
    return record if ok else None


def still_valid(record: dict, out: Path, file: str, inputs: str, size: int) -> bool:
    """The record was made from these inputs and its arrays are whole (a truncated array is extracted again)."""
    if record.get("inputs") != inputs:
        return False
    frames = record["frames"]
    if array_problem(out / "frames" / f"{file}.npy", (len(frames), size, size)):
        return False
    masks = sum(1 for f in frames if isinstance(f, dict) and int(f.get("mask_index", -1)) >= 0)
    return not masks or array_problem(out / "masks" / f"{file}.npy", (masks, size, size)) is None


def with_split(record: dict, split: str, out: Path, file: str) -> dict:
    """A reused record in the split the current listing gives its patient (rewritten only when it moved)."""
    if record["video"].get("split") != split:
        record["video"]["split"] = split
        for frame in record["frames"]:
            frame["split"] = split
        write_record(out, file, record)
    return record


def forget(out: Path, file: str) -> None:
    """Remove a video's record, then its arrays: a run killed in between leaves arrays without a record, redone."""
    (out / "records" / f"{file}.json").unlink(missing_ok=True)
    (out / "frames" / f"{file}.npy").unlink(missing_ok=True)
    (out / "masks" / f"{file}.npy").unlink(missing_ok=True)


def remove_unlisted(out: Path, files: set[str]) -> int:
    """Remove the records and arrays of videos no longer listed; returns how many records went.

    Only names :func:`file_stem` makes, in the store's own sub-folders, are touched: a file usvid did not
    write stays.
    """
    removed = 0
    for sub in ("records", "frames", "masks"):  # records first, see forget
        folder = out / sub
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            match = RECORD_NAME.match(path.name)
            ours = match and path.suffix == (".json" if sub == "records" else ".npy") and path.is_file()
            if ours and match["file"] not in files:
                path.unlink()
                removed += sub == "records"
    return removed
