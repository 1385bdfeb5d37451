"""The frame store that ``usvid extract`` writes and training reads.

Layout of a store folder::

    store.json            {"format": "usvid-store", "version": 1, "size": S, "labels": [...], ...}; written last
    videos.csv            one row per video (scan region in source pixels, frame counts, split, the source
                          dataset's name, per-video metadata as a JSON object such as BUS-BRA's BI-RADS)
    frames.csv            one row per stored frame (source index, row in the array, boxes in stored pixels)
    frames/<file>.npy     (N, S, S) uint8 grey frames of one video, memory-mappable
    masks/<file>.npy      (A, S, S) uint8 {0, 255} lesion masks of that video's A annotated frames
    records/<file>.json   per-video record; its presence marks the video finished (resume skips it)
    extract.json          the settings the store was extracted with

Frames are the scan region (cropped and blanked, see :mod:`usvid.video.roi`) resized to ``S x S`` keeping
the aspect ratio: scaled so the longer side is ``S`` (box pre-filter + bilinear, area-like), centred, the
rest padded with black (0) -- a letterbox. Boxes and masks go through the same crop, scale and offset.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from usvid.boxes import Box
from usvid.errors import InputError

STORE_FORMAT = "usvid-store"
STORE_VERSION = 1
STORE_JSON = "store.json"
VIDEO_COLUMNS = [
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
    "roi_method",
    "width",
    "height",
    "stored_frames",
    "deduped",
    "file",
    "dataset",
    "meta",
]
# Columns added after version 1 was first written: a store without them still reads (as "").
OPTIONAL_VIDEO_COLUMNS = ("dataset", "meta")
FRAME_COLUMNS = [
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
    "annotated",
    "num_boxes",
    "boxes",
    "mask_index",
]
#: Decimals of the stored-pixel box corners in ``frames.csv``.
BOX_DECIMALS = 2
RESIZE_RULE = "letterbox: longer side scaled to size (box pre-filter + bilinear), centred, padded with black"


@dataclass(frozen=True)
class Letterbox:
    """Maps a ``w x h`` crop into an ``S x S`` stored frame: scale, then offset by the padding."""

    w: int
    h: int
    size: int

    @cached_property
    def scaled(self) -> tuple[int, int]:
        s = self.size / max(self.w, self.h)
        return (max(1, min(self.size, round(self.w * s))), max(1, min(self.size, round(self.h * s))))

    @property
    def offset(self) -> tuple[int, int]:
        nw, nh = self.scaled
        return ((self.size - nw) // 2, (self.size - nh) // 2)

    @cached_property
    def prefilter(self) -> int:
        """Odd box-filter size against aliasing when shrinking by 2x or more (1: none)."""
        factor = max(self.w / self.scaled[0], self.h / self.scaled[1])
        return 2 * int(factor // 2) + 1

    def frames(self, crops: np.ndarray) -> np.ndarray:
        """``(T, h, w)`` uint8 -> ``(T, S, S)`` uint8.

        Area-like resampling at a fraction of INTER_AREA's cost (10x at non-integer factors): a centred box
        filter about the size of the scale step, then bilinear; the geometry is exactly bilinear's.
        """
        out = np.zeros((crops.shape[0], self.size, self.size), np.uint8)
        for crop, slot in zip(crops, out):
            self.frame_into(crop, slot)
        return out

    def frame_into(self, crop: np.ndarray, out: np.ndarray) -> None:
        """One ``(h, w)`` uint8 crop (any strides) into ``out``, ``(S, S)`` uint8 whose padding is already 0."""
        import cv2

        nw, nh = self.scaled
        ox, oy = self.offset
        k = self.prefilter
        src = cv2.blur(crop, (k, k)) if k > 1 else crop
        cv2.resize(src, (nw, nh), dst=out[oy : oy + nh, ox : ox + nw], interpolation=cv2.INTER_LINEAR)

    def clean(self, mask: np.ndarray) -> np.ndarray:
        """``(S, S)`` uint8 {0, 1}: stored pixels computed only from pixels inside ``mask`` (``(h, w)`` {0, 1}).

        Runs the mask through the same box filter and bilinear weights as :meth:`frames` (in float): a stored
        pixel is 1 only if every source pixel with a non-zero weight lies in the mask. Multiplying resized
        frames by it blanks as much as blanking before resizing would, and never lets a pixel outside the
        scan (text beside it) bleed into a kept one.
        """
        import cv2

        nw, nh = self.scaled
        ox, oy = self.offset
        src = mask.astype(np.float32)
        if self.prefilter > 1:
            src = cv2.blur(src, (self.prefilter, self.prefilter))
        inside = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_LINEAR) >= 1.0 - 1e-5
        out = np.zeros((self.size, self.size), np.uint8)
        out[oy : oy + nh, ox : ox + nw] = inside
        return out

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """``(h, w)`` {0, 1} -> ``(S, S)`` uint8 {0, 255} (nearest neighbour, same geometry as frames)."""
        import cv2

        nw, nh = self.scaled
        ox, oy = self.offset
        out = np.zeros((self.size, self.size), np.uint8)
        out[oy : oy + nh, ox : ox + nw] = cv2.resize(
            mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST
        )
        return np.where(out > 0, 255, 0).astype(np.uint8)

    def box(self, corners: tuple[float, float, float, float]) -> Box:
        """Crop-pixel corners ``(x0, y0, x1, y1)`` (as clipping to the crop gives them) -> the box in stored pixels.

        The stored corners are rounded to :data:`BOX_DECIMALS`, as ``frames.csv`` holds them.
        """
        nw, nh = self.scaled
        ox, oy = self.offset
        sx, sy = nw / self.w, nh / self.h
        x0, y0, x1, y1 = corners
        return Box.from_xyxy(
            round(x0 * sx + ox, BOX_DECIMALS),
            round(y0 * sy + oy, BOX_DECIMALS),
            round(x1 * sx + ox, BOX_DECIMALS),
            round(y1 * sy + oy, BOX_DECIMALS),
        )

    def boxes_mask(self, boxes: list[Box]) -> np.ndarray:
        """``(S, S)`` uint8 {0, 255} with each stored-pixel box filled (covering every pixel it touches)."""
        out = np.zeros((self.size, self.size), np.uint8)
        for box in boxes:
            out[box_slices(box)] = 255
        return out


def stored_corners(box: Box) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of a stored-pixel box exactly as ``frames.csv`` holds them.

    Rounded to :data:`BOX_DECIMALS`: in floats ``x + w`` can miss the stored ``x1`` by an ulp, which would
    change the written text and move a ``ceil`` by a whole pixel.
    """
    x0, y0, x1, y1 = box.as_xyxy()
    return (round(x0, BOX_DECIMALS), round(y0, BOX_DECIMALS), round(x1, BOX_DECIMALS), round(y1, BOX_DECIMALS))


def box_slices(box: Box) -> tuple[slice, slice]:
    """Row and column slices of every pixel a stored-pixel box touches (clipped at 0, for painting masks)."""
    x0, y0, x1, y1 = stored_corners(box)
    rows = slice(max(0, math.floor(y0)), max(0, math.ceil(y1)))
    return rows, slice(max(0, math.floor(x0)), max(0, math.ceil(x1)))


@dataclass(frozen=True)
class StoredVideo:
    video_id: str
    patient_id: str
    label: str
    split: str
    source: str
    roi: tuple[int, int, int, int]
    num_frames: int
    fps: float
    stored_frames: int = 0
    file: str = ""
    dataset: str = ""
    meta: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class StoredFrame:
    """One stored frame; ``box`` (the union of its boxes) and ``boxes`` are in stored pixels."""

    video_id: str
    patient_id: str
    frame_index: int
    store_index: int
    timestamp: float
    label: str
    split: str
    has_box: bool
    box: Box | None
    annotated: bool = False
    boxes: tuple[Box, ...] = ()
    mask_index: int = -1


def _meta(text: str) -> dict[str, str]:
    try:
        meta = json.loads(text) if text else {}
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise InputError(f"videos.csv: meta {text!r} is not a JSON object; re-run usvid extract")
    return meta


def format_boxes(boxes: list[Box]) -> str:
    """``frames.csv``'s ``boxes`` text of stored-pixel boxes: ``x0 y0 x1 y1`` corners, ``|`` between boxes."""
    return "|".join(" ".join(f"{v:g}" for v in stored_corners(b)) for b in boxes)


def parse_boxes(text: str) -> tuple[Box, ...]:
    """The stored-pixel boxes of a ``boxes`` text (see :func:`format_boxes`)."""
    return tuple(_corners_box(part.split()) for part in text.split("|") if part.strip())


def _corners_box(values: list[str]) -> Box:
    try:
        x0, y0, x1, y1 = (float(v) for v in values)
        return Box.from_xyxy(x0, y0, x1, y1)
    except ValueError:
        raise InputError(
            f"frames.csv: box {' '.join(values)!r} is not four corners 'x0 y0 x1 y1' with x0 <= x1 and y0 <= y1; "
            "the store is damaged, re-run usvid extract"
        ) from None


def read_csv(path: Path, columns: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError(f"{path}: missing; the store is incomplete, re-run usvid extract on it")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)}; not a usvid store of this version"
            )
        return list(reader)


def array_problem(path: Path, shape: tuple[int, ...] | None = None) -> str | None:
    """What is wrong with the uint8 ``.npy`` at ``path`` (missing, truncated, another shape), or None.

    Reads the header and the file size only, so a whole store is checked in milliseconds.
    """
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # usvid writes 1.0; 2.0 only for headers over 64 KiB
                return f"a .npy of version {version[0]}.{version[1]}, not one usvid writes"
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            found, fortran, dtype = read_header[version](f)
            data_start = f.tell()
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, EOFError, SyntaxError) as err:
        return f"not a readable array ({type(err).__name__}: {err})"
    if dtype != np.uint8 or fortran:
        return f"holds {dtype} {'Fortran-order ' if fortran else ''}data, not uint8"
    if shape is not None and tuple(found) != tuple(shape):
        return f"holds an array of shape {tuple(found)}, not {tuple(shape)}"
    expected = data_start + math.prod(found)
    size = path.stat().st_size
    if size < expected:
        return f"truncated ({size} bytes, its header needs {expected})"
    return None


class FrameStore:
    """Read an extracted store (see the module docstring); arrays are memory-mapped, not loaded.

    Opening it checks every array's header and size against ``videos.csv`` and ``frames.csv``, so a damaged
    store fails in one line naming the file before any training starts, not in the middle of an epoch.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / STORE_JSON
        if not meta_path.is_file():
            raise InputError(
                f"{self.path}: not a finished frame store (no {STORE_JSON}); run `usvid extract SRC {self.path}` "
                "(it resumes an interrupted extraction)"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"{meta_path}: not valid JSON ({err})") from None
        if meta.get("format") != STORE_FORMAT or meta.get("version") != STORE_VERSION:
            raise InputError(
                f"{meta_path}: format {meta.get('format')!r} version {meta.get('version')!r} is not "
                f"{STORE_FORMAT!r} version {STORE_VERSION}; re-extract with this usvid"
            )
        self.meta = meta
        required = [c for c in VIDEO_COLUMNS if c not in OPTIONAL_VIDEO_COLUMNS]
        self._videos = [self._video(r) for r in read_csv(self.path / "videos.csv", required)]
        self._by_id = {v.video_id: v for v in self._videos}
        self._frames = [self._frame(r) for r in read_csv(self.path / "frames.csv", FRAME_COLUMNS)]
        self._check_arrays()

    def _damaged(self, path: Path, problem: str) -> InputError:
        return InputError(
            f"{path}: {problem}; the store is damaged, re-run `usvid extract SRC {self.path}` "
            "(it redoes the damaged videos)"
        )

    def _check_arrays(self) -> None:
        masks: dict[str, int] = {}
        for f in self._frames:
            if f.mask_index >= 0:
                masks[f.video_id] = max(masks.get(f.video_id, 0), f.mask_index + 1)
        size = self.size
        for v in self._videos:
            path = self.path / "frames" / f"{v.file}.npy"
            problem = array_problem(path, (v.stored_frames, size, size))
            if problem:
                raise self._damaged(path, problem)
            if v.video_id in masks:
                path = self.path / "masks" / f"{v.file}.npy"
                problem = array_problem(path)
                shape = np.load(path, mmap_mode="r").shape if problem is None else None
                if shape is not None and (shape[1:] != (size, size) or shape[0] < masks[v.video_id]):
                    problem = f"holds masks of shape {shape}, frames.csv needs ({masks[v.video_id]}, {size}, {size})"
                if problem:
                    raise self._damaged(path, problem)

    @staticmethod
    def _video(r: dict[str, str]) -> StoredVideo:
        return StoredVideo(
            r["video_id"],
            r["patient_id"],
            r["label"],
            r["split"],
            r["source"],
            (int(r["roi_x"]), int(r["roi_y"]), int(r["roi_w"]), int(r["roi_h"])),
            int(r["num_frames"]),
            float(r["fps"]),
            int(r["stored_frames"]),
            r["file"],
            r.get("dataset") or "",
            _meta(r.get("meta") or ""),
        )

    @staticmethod
    def _frame(r: dict[str, str]) -> StoredFrame:
        has_box = r["has_box"] == "1"
        box = _corners_box([r[k] for k in ("x0", "y0", "x1", "y1")]) if has_box else None
        return StoredFrame(
            r["video_id"],
            r["patient_id"],
            int(r["frame_index"]),
            int(r["store_index"]),
            float(r["timestamp"]),
            r["label"],
            r["split"],
            has_box,
            box,
            r["annotated"] == "1",
            parse_boxes(r["boxes"]),
            int(r["mask_index"]),
        )

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def videos(self) -> list[StoredVideo]:
        return list(self._videos)

    @property
    def frames(self) -> list[StoredFrame]:
        return list(self._frames)

    def _video_of(self, video_id: str) -> StoredVideo:
        try:
            return self._by_id[video_id]
        except KeyError:
            from usvid.errors import did_you_mean

            raise InputError(
                f"{self.path}: no video '{video_id}' in the store.{did_you_mean(video_id, self._by_id)}"
            ) from None

    def _load(self, path: Path) -> np.ndarray:
        # Checked at open, but a file can be damaged while a long training reads it.
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as err:
            raise self._damaged(path, array_problem(path) or f"not a readable array ({err})") from None

    def frames_of(self, video_id: str) -> np.ndarray:
        """``(N, S, S)`` uint8 memory-mapped frames of one video, in ``store_index`` order."""
        return self._load(self.path / "frames" / f"{self._video_of(video_id).file}.npy")

    @cached_property
    def _mask_index(self) -> dict[tuple[str, int], int]:
        return {(f.video_id, f.store_index): f.mask_index for f in self._frames if f.mask_index >= 0}

    def mask_of(self, video_id: str, store_index: int) -> np.ndarray | None:
        """``(S, S)`` uint8 {0, 255} lesion mask, all zero for an annotated frame without lesion, None if unannotated."""
        video = self._video_of(video_id)
        k = self._mask_index.get((video_id, int(store_index)))
        if k is None:
            return None
        return self._load(self.path / "masks" / f"{video.file}.npy")[k]

    def split(self, name: str) -> list[StoredFrame]:
        from usvid.data.splits import SPLITS

        if name not in SPLITS:
            from usvid.errors import unknown_name

            raise unknown_name("split", name, SPLITS)
        return [f for f in self._frames if f.split == name]
