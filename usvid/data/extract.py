"""``extract(src, out, config)``: recorded scans -> a frame store with per-patient splits.

Per video: decode frame by frame (PyAV hands out its decoded plane, no copy), detect the scan region on
the first frames (or use ``--roi``), crop + blank + letterbox every kept frame, map boxes and masks the
same way, and write the video's arrays then its record, each atomically (temp name, then rename). A video
with a record is finished: a re-run skips it, so an interrupted extraction resumes and ends with the same
bytes as an uninterrupted one, and re-running a finished extraction writes nothing. A failing video is
reported (file + problem) and the others go on, unless ``strict``. A video whose decoding ends before the
frame count or duration its container declares (a file cut short) is kept with a warning, or fails under
``strict``.

A record is reused only while its inputs are unchanged: it carries a digest of the video's source file (size,
mtime, a hash of its first and last blocks), mask files, manifest row and boxes. A video whose digest moved is
extracted again, records of videos no longer listed are removed with their arrays, and the splits are made
from the whole current listing (a reused video whose patient moved gets its new split, and the moves are
reported), so a re-run after an edit gives the store a fresh extraction of the edited inputs would give.

Several sources (``usvid extract BUSI BUSBRA OUT``) make one store. Each source is named after its folder
(``busi``, ``busbra``), and its videos' ``dataset`` column says so; video and patient ids get the name as a prefix
(``busbra:bus_0002-l``, patient ``busbra:2``) so they never collide across sources. Each source is split on its own,
per patient and stratified, with the same seed, then the sources are concatenated: every patient is in the split
it gets in a store of its source alone, so the multi-source test split is the union of the single-source ones (what
cross-dataset evaluation needs), and the class balance is kept within each source. ``--groups`` members that are
bare ids apply to every source holding such a video id (BUSI's ``near_duplicates.csv`` names BUSI images only);
``name:id`` members apply to source ``name`` only; a group never joins patients of two sources. ``--classes``
keeps only the given labels (BUSI's ``benign,malignant`` protocol drops ``normal``) before splitting.

Videos run ``workers`` at a time (one per core by default, at most 8), each on a single-threaded decoder:
at MBUD-like sizes FFmpeg decodes a stream on one thread for about 30% less CPU than with frame threads, and
several videos keep the cores busy where frame threads leave a quarter of them idle
(``benchmarks/extract_bench.py``).
The store does not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from usvid.boxes import Box
from usvid.data.manifest import LESION_CATEGORY
from usvid.data.sources import Failure, SourceItem, SourceList, file_signature, list_sources, source_name
from usvid.data.splits import SPLITS, SplitFractions, assign_splits, read_groups, split_warnings
from usvid.data.store import (
    FRAME_COLUMNS,
    RESIZE_RULE,
    STORE_FORMAT,
    STORE_JSON,
    STORE_VERSION,
    VIDEO_COLUMNS,
    Letterbox,
    array_problem,
    format_boxes,
)
from usvid.errors import (
    ConfigError,
    InputError,
    MissingDependencyError,
    ProcessingError,
    did_you_mean,
    unknown_name,
)
from usvid.io import atomic_path, file_mode, write_json_atomic, write_text_atomic
from usvid.outputs import check_output_dir, check_path_text
from usvid.preprocess import ScanLetterbox
from usvid.video.reader import (
    BACKENDS,
    DEFAULT_BATCH_SIZE,
    MAX_FRAME_SIDE,
    GreyFrame,
    early_end,
    expand_range,
    open_video,
)
from usvid.video.roi import (
    ROI_FRAMES,
    MotionStats,
    ScanRegion,
    fixed_scan_region,
    full_frame_region,
    region_from_stats,
)

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 8
ENDED_EARLY = "ended_early"  # warning code: decoding stopped before the container's declared end
RECORD_NAME = re.compile(r"^(?P<file>[A-Za-z0-9-][A-Za-z0-9._-]*-[0-9a-f]{8})\.(?:json|npy)$")  # what file_stem names, nothing else


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction.

    Attributes:
        size: stored frames are ``size x size`` (letterboxed).
        every: keep every K-th source frame; ``fps``: keep about F frames per second (not both).
            Annotated frames are always kept.
        split: patient fractions per split; ``seed`` makes the split deterministic.
        roi: fixed scan region ``(x, y, w, h)`` in source pixels instead of detection.
        dedupe: drop a frame whose mean absolute difference to the previous kept frame (stored pixels)
            is below ``dedupe_threshold`` grey levels (a still probe); annotated frames are never dropped.
        strict: stop at the first failure instead of reporting it and going on.
        groups: CSV of near-duplicate groups (``group,image``) kept in one split.
        backend: video decoder (``auto``, ``pyav``, ``decord``, ``torchcodec``).
        workers: videos extracted at once (0: one per CPU core, at most :data:`MAX_AUTO_WORKERS`: each holds
            its first ``roi_frames`` frames, 200 MB at 1080p). With more than one, each video is decoded
            on one thread (FFmpeg decodes a stream faster per CPU second alone than with frame threads, and
            the videos fill the cores), except the last ones, which get FFmpeg's threads to themselves.
            The store is the same for any number of workers.
        classes: keep only videos of these labels (compared case-insensitively).
        category: the COCO category of ``annotations.json`` whose boxes are lesion boxes; boxes of other
            categories are skipped and counted in a warning.
    """

    size: int = 256
    every: int | None = None
    fps: float | None = None
    split: SplitFractions = field(default_factory=SplitFractions)
    seed: int = 0
    roi: tuple[int, int, int, int] | None = None
    dedupe: bool = False
    dedupe_threshold: float = 1.0
    strict: bool = False
    groups: Path | None = None
    backend: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE
    roi_frames: int = ROI_FRAMES
    workers: int = 0
    classes: tuple[str, ...] | None = None
    category: str = LESION_CATEGORY

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ConfigError(f"--size {self.size}: must be at least 32 pixels")
        if self.every is not None and self.fps is not None:
            raise ConfigError("--every and --fps both given; choose one way of sampling frames")
        if self.every is not None and self.every < 1:
            raise ConfigError(f"--every {self.every}: must be a whole number >= 1")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps {self.fps}: must be > 0")
        if self.backend not in BACKENDS or self.backend in ("images", "dicom"):
            raise unknown_name("backend", self.backend, ("auto", "pyav", "decord", "torchcodec"))
        if self.batch_size < 1 or self.roi_frames < 2:
            raise ConfigError("batch_size must be >= 1 and roi_frames >= 2")
        if self.dedupe_threshold < 0:
            raise ConfigError(f"dedupe_threshold {self.dedupe_threshold}: must be >= 0")
        if self.workers < 0:
            raise ConfigError(f"--workers {self.workers}: must be >= 0 (0: one per CPU core)")
        if self.classes is not None and not all(c.strip() for c in self.classes):
            raise ConfigError(f"--classes {','.join(self.classes)}: class names must not be empty, such as benign,malignant")
        if not self.category.strip():
            raise ConfigError("--category: must not be empty; the default is 'lesion'")
        if self.roi is not None:
            self._check_roi(self.roi)

    @staticmethod
    def _check_roi(roi: tuple[int, ...]) -> None:
        """The region's own rule, checked before anything is written (its fit to each video is checked per video)."""
        text = ",".join(map(str, roi))
        if len(roi) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi):
            raise ConfigError(f"--roi {text}: expected four whole numbers x,y,w,h such as 40,60,560,400")
        x, y, w, h = roi
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ConfigError(f"--roi {text}: x and y must be >= 0, width and height > 0, such as 40,60,560,400")
        if x + w > MAX_FRAME_SIDE or y + h > MAX_FRAME_SIDE:
            raise ConfigError(f"--roi {text}: reaches past {MAX_FRAME_SIDE} pixels, larger than any video usvid reads")

    def fingerprint(self) -> dict:
        """The settings that change the store's content (``strict``, ``batch_size`` and ``workers`` do not)."""
        groups = hashlib.sha1(Path(self.groups).read_bytes()).hexdigest() if self.groups else None
        # ``classes`` only when given: stores made before it existed keep their fingerprint (and resume).
        classes = {"classes": sorted(self.classes)} if self.classes is not None else {}
        category = {"category": self.category} if self.category != LESION_CATEGORY else {}
        return {
            "size": self.size,
            "every": self.every,
            "fps": self.fps,
            "split": list(self.split.as_tuple()),
            "seed": self.seed,
            "roi": list(self.roi) if self.roi else None,
            "dedupe": self.dedupe,
            "dedupe_threshold": self.dedupe_threshold if self.dedupe else None,
            "groups_sha1": groups,
            "backend": self.backend,
            "roi_frames": self.roi_frames,
            **classes,
            **category,
        }


@dataclass(frozen=True)
class ExtractProgress:
    """Reported to the ``progress`` callback after every batch and when a video is finished or skipped."""

    video_id: str
    video_number: int
    num_videos: int
    frames_done: int
    frames_total: int
    finished: bool = False
    skipped: bool = False
    failed: bool = False


@dataclass(frozen=True)
class SplitCount:
    split: str
    label: str
    videos: int
    frames: int
    annotated: int


@dataclass
class ExtractSummary:
    """What an extraction did: counts per split and class, and every failure (file + message).

    ``extracted`` counts the videos extracted by this run, ``changed`` those of them that had been extracted
    before from other inputs; ``skipped`` the finished videos reused as they were. ``ended_early`` counts the
    videos whose decoding stopped before their container's declared end (each also a warning);
    ``split_changes`` lists ``(patient, old split, new split)`` for the patients the current listing moved;
    ``split_warnings`` one line per split that is empty, has few patients or lacks a class (also in store.json).
    """

    out: Path
    counts: list[SplitCount]
    failures: list[Failure]
    extracted: int = 0
    skipped: int = 0
    deduped: int = 0
    warnings: list[Failure] = field(default_factory=list)
    changed: int = 0
    removed: int = 0
    ended_early: int = 0
    split_changes: list[tuple[str, str, str]] = field(default_factory=list)
    split_warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


Progress = Callable[[ExtractProgress], None]


def file_stem(video_id: str) -> str:
    """A file-system-safe, collision-free name for a video id (ids may hold spaces, slashes, brackets)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("._")[:80] or "video"
    return f"{safe}-{hashlib.sha1(video_id.encode()).hexdigest()[:8]}"


class FrameSelector:
    """Which source frames to keep: every K-th, or the first frame of each 1/F-second bucket, plus annotated."""

    def __init__(self, config: ExtractConfig, annotated: set[int]) -> None:
        self.every, self.fps, self.annotated = config.every, config.fps, annotated
        self._bucket = -1

    def keep(self, index: int, seconds: float) -> bool:
        chosen = True
        if self.every is not None:
            chosen = index % self.every == 0
        elif self.fps is not None:
            bucket = math.floor(seconds * self.fps + 1e-6)
            chosen = bucket > self._bucket
            if chosen:
                self._bucket = bucket
        return chosen or index in self.annotated


class _NpyWriter:
    """Append ``(S, S)`` uint8 frames to a hidden temp ``.npy``; ``finish`` fixes its header and renames it.

    The header is written first for an estimated frame count and rewritten in place at the end (same
    length: numpy pads headers to 64 bytes), so the frames are written once.
    """

    def __init__(self, final: Path, size: int, estimate: int = 0) -> None:
        self.final, self.size, self.count = final, size, 0
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = final.parent / f".{final.name}.tmp"
        self._file = self.tmp_path.open("wb")
        self._header = self._header_bytes(max(estimate, 1))
        self._file.write(self._header)

    def _header_bytes(self, count: int) -> bytes:
        import io

        buf = io.BytesIO()
        header = {"descr": "|u1", "fortran_order": False, "shape": (count, self.size, self.size)}
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue()

    def append(self, frames: np.ndarray) -> None:
        self._file.write(memoryview(np.ascontiguousarray(frames, dtype=np.uint8)).cast("B"))
        self.count += frames.shape[0]

    def finish(self) -> None:
        header = self._header_bytes(self.count)
        if len(header) == len(self._header):
            self._file.seek(0)
            self._file.write(header)
            self._file.close()
        else:  # the count's digits pushed the header over a 64-byte step: rewrite behind a new header
            self._file.close()
            data = self.tmp_path.read_bytes()[len(self._header) :]
            self.tmp_path.write_bytes(header + data)
        os.chmod(self.tmp_path, file_mode())
        os.replace(self.tmp_path, self.final)

    def abort(self) -> None:
        self._file.close()
        self.tmp_path.unlink(missing_ok=True)


def _check_annotations(item: SourceItem, width: int, height: int, num_frames: int) -> None:
    where = f"{item.path.name} (video '{item.video_id}')"
    past = [i for i in item.boxes if i >= num_frames]
    if past:
        raise ProcessingError(
            f"annotation for frame {min(past)} of {where}, but the video has {num_frames} frames "
            f"(0..{num_frames - 1}); fix annotations.json"
        )
    for idx, boxes in item.boxes.items():
        for b in boxes:
            x0, y0, x1, y1 = b.as_xyxy()
            if x0 < -0.5 or y0 < -0.5 or x1 > width + 0.5 or y1 > height + 0.5:
                raise ProcessingError(
                    f"box [{b.x:g}, {b.y:g}, {b.w:g}, {b.h:g}] of frame {idx} of {where} lies outside the "
                    f"{width}x{height} image; fix annotations.json"
                )


class _Scratch(threading.local):
    """A worker thread's buffer for the first frames of a video, reused from one video to the next.

    Fresh memory is not free: the kernel zeroes every page on first touch (some 2 us per 4 KiB page on our
    CI machine, 20 ms for 96 frames of 854x500).
    """

    def array(self, shape: tuple[int, ...]) -> np.ndarray:
        buf = getattr(self, "buf", None)
        if buf is None or buf.shape != shape:
            self.buf = buf = np.empty(shape, np.uint8)
        return buf


class _VideoJob:
    """Extracts one source item into ``frames/<file>.npy`` (+ masks) and returns its record.

    ``threads``: FFmpeg decoding threads (0: FFmpeg picks); ``scratch``: the worker thread's reusable buffer.
    """

    def __init__(
        self,
        item: SourceItem,
        split: str,
        config: ExtractConfig,
        out: Path,
        file: str,
        threads: int = 0,
        scratch: _Scratch | None = None,
    ) -> None:
        self.item, self.split, self.config, self.out, self.file = item, split, config, out, file
        self.threads, self.scratch = threads, scratch or _Scratch()
        self.frame_rows: list[dict] = []
        self.masks: list[np.ndarray] = []
        self.deduped = 0
        self.warnings: list[dict[str, str]] = []
        self._last: np.ndarray | None = None
        self.region: ScanRegion | None = None
        self.box: Letterbox | None = None
        self.letterbox: ScanLetterbox | None = None
        self._stored: np.ndarray | None = None  # (batch_size, S, S): letterboxed frames not yet written
        self._taken: list[tuple[int, float]] = []  # their source index and seconds
        self._limited = False

    def set_region(self, region: ScanRegion) -> None:
        self.region = region
        # The one frame path predictors share (crop, letterbox, blank: usvid.preprocess.ScanLetterbox).
        self.letterbox = ScanLetterbox.of(region, self.config.size)
        self.box = self.letterbox.box
        # Letterboxed frames of one batch; the padding stays 0 (range expansion and blanking keep 0 at 0).
        size = self.config.size
        self._stored = np.zeros((self.config.batch_size, size, size), np.uint8)

    def _map_boxes(self, idx: int, boxes: list[Box]) -> list[tuple[float, float, float, float]]:
        r = self.region
        out = []
        for b in boxes:
            x0, y0, x1, y1 = b.as_xyxy()
            cx0, cy0 = min(max(x0 - r.x, 0), r.w), min(max(y0 - r.y, 0), r.h)
            cx1, cy1 = min(max(x1 - r.x, 0), r.w), min(max(y1 - r.y, 0), r.h)
            if cx1 - cx0 < 1 or cy1 - cy0 < 1:
                raise ProcessingError(
                    f"box [{b.x:g}, {b.y:g}, {b.w:g}, {b.h:g}] of frame {idx} of {self.item.path.name} lies outside "
                    f"the scan region {r.box}; pass --roi x,y,w,h covering it"
                )
            out.append(self.box.box((cx0, cy0, cx1, cy1)))
        return out

    def take(self, writer: _NpyWriter, frame: GreyFrame, selector: FrameSelector) -> None:
        """Letterbox one source frame (``(H, W)`` uint8, may be a view of the decoder's memory) if it is kept."""
        if not selector.keep(frame.index, frame.seconds):
            return
        self.letterbox.into(frame.grey, self._stored[len(self._taken)])
        self._taken.append((frame.index, frame.seconds))
        self._limited = frame.limited_range
        if len(self._taken) == len(self._stored):
            self.commit(writer)

    def commit(self, writer: _NpyWriter, lesion_mask: np.ndarray | None = None) -> None:
        """Finish the letterboxed frames taken so far (range, blanking, near-duplicates) and write them."""
        if not self._taken:
            return
        stored = self._stored[: len(self._taken)]
        if self._limited:
            # Commutes with resampling up to rounding (1 grey level), and keeps blanked pixels at 0.
            expand_range(stored)
        written = []
        for j, ((idx, seconds), frame) in enumerate(zip(self._taken, stored)):
            annotated = idx in self.item.boxes or (self.item.annotated_masks and idx == 0)
            still = self.config.dedupe and not annotated and self._last is not None
            if (
                still
                and float(np.abs(frame.astype(np.int16) - self._last).mean()) < self.config.dedupe_threshold
            ):
                self.deduped += 1
                continue
            if self.config.dedupe:
                self._last = frame.astype(np.int16)
            written.append(j)
            self._row(idx, seconds, annotated, lesion_mask)
        if written:
            writer.append(stored if len(written) == len(stored) else stored[written])
        self._taken.clear()

    def _row(self, idx: int, seconds: float, annotated: bool, lesion_mask: np.ndarray | None) -> None:
        boxes = self._map_boxes(idx, self.item.boxes.get(idx, [])) if annotated else []
        mask_index = -1
        if annotated:
            if lesion_mask is not None:
                self.masks.append(self.box.mask(self.region.apply(lesion_mask)))
            else:
                self.masks.append(self.box.boxes_mask(boxes))
            mask_index = len(self.masks) - 1
        union = (
            (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
            if boxes
            else None
        )
        self.frame_rows.append(
            {
                "video_id": self.item.video_id,
                "patient_id": self.item.patient_id,
                "frame_index": idx,
                "timestamp": round(seconds, 6),
                "label": self.item.label,
                "split": self.split,
                "has_box": int(bool(boxes)),
                "x0": union[0] if union else "",
                "y0": union[1] if union else "",
                "x1": union[2] if union else "",
                "y1": union[3] if union else "",
                "store_index": len(self.frame_rows),
                "annotated": int(annotated),
                "num_boxes": len(boxes),
                "boxes": format_boxes(boxes),
                "mask_index": mask_index,
            }
        )

    def run(self, progress: Callable[[int, int], None]) -> dict:
        writer = _NpyWriter(self.out / "frames" / f"{self.file}.npy", self.config.size, estimate=1000)
        try:
            if self.item.still:
                num_frames, fps, width, height = self._run_still(writer)
            else:
                num_frames, fps, width, height = self._run_video(writer, progress)
            if not self.frame_rows:
                raise ProcessingError(f"{self.item.path}: no frame was kept; check --every/--fps")
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        masks_path = self.out / "masks" / f"{self.file}.npy"
        if self.masks:
            with atomic_path(masks_path) as tmp, tmp.open("wb") as f:
                np.save(f, np.stack(self.masks))
        else:  # one left by an earlier extraction of this video, when it still had boxes
            masks_path.unlink(missing_ok=True)
        r = self.region
        meta = json.dumps(self.item.meta, sort_keys=True, separators=(",", ":")) if self.item.meta else ""
        video = {
            "video_id": self.item.video_id,
            "patient_id": self.item.patient_id,
            "label": self.item.label,
            "split": self.split,
            "source": self.item.source,
            "roi_x": r.x,
            "roi_y": r.y,
            "roi_w": r.w,
            "roi_h": r.h,
            "num_frames": num_frames,
            "fps": round(fps, 6),
            "roi_method": r.method,
            "width": width,
            "height": height,
            "stored_frames": len(self.frame_rows),
            "deduped": self.deduped,
            "file": self.file,
            "dataset": self.item.dataset,
            "meta": meta,
        }
        record = {"video": video, "frames": self.frame_rows}
        if self.warnings:
            record["warnings"] = self.warnings
        return record

    def _region_for(self, width: int, height: int) -> ScanRegion | None:
        if self.config.roi is not None:
            return fixed_scan_region(
                self.config.roi, width, height, where=f"--roi for {self.item.path.name}:"
            )
        return None

    def _run_still(self, writer: _NpyWriter) -> tuple[int, float, int, int]:
        from usvid.data.busbra import cross_check
        from usvid.data.busi import load_masks
        from usvid.video.images import read_image

        image = read_image(self.item.path, grey=True)
        height, width = image.shape
        self.set_region(self._region_for(width, height) or full_frame_region(width, height))
        lesion, boxes = None, []
        if self.item.annotated_masks:
            lesion, boxes = load_masks(self.item, width, height)
            self.item = replace(self.item, boxes={0: boxes})
        self.warnings = cross_check(self.item, width, height, boxes)
        for w in self.warnings:
            log.warning("%s: %s", w["file"], w["message"])
        self.take(writer, GreyFrame(0, 0.0, image), FrameSelector(self.config, {0}))
        self.commit(writer, lesion)
        return 1, 0.0, width, height

    def _run_video(
        self, writer: _NpyWriter, progress: Callable[[int, int], None]
    ) -> tuple[int, float, int, int]:
        config = self.config
        # grey_frames is closed before the reader, also when a video stops early: the reader may decode ahead
        # on another thread.
        with (
            open_video(self.item.path, config.backend, threads=self.threads) as reader,
            closing(reader.grey_frames(raw_luma=True)) as frames,
        ):
            info = reader.info
            _check_annotations(self.item, info.width, info.height, info.num_frames)
            region = self._region_for(info.width, info.height)
            if region is not None:
                self.set_region(region)
            selector = FrameSelector(config, set(self.item.boxes))
            held: list[GreyFrame] = []
            stats, seen, last_seconds = MotionStats(), 0, None
            # raw_luma: the range expansion runs on the letterboxed frames, not on the full ones.
            for frame in frames:
                seen += 1
                last_seconds = frame.seconds
                if self.region is not None:
                    self.take(writer, frame, selector)
                else:
                    # Hold the first frames (copies: the reader's memory is reused) until the scan region is known;
                    # their statistics are taken as they come, while the decoder is the one that is busy.
                    held.append(frame._replace(grey=self._hold(len(held), frame.grey)))
                    stats.update(held[-1].grey[None], limited_range=frame.limited_range)
                    if len(held) == config.roi_frames:
                        self._detect(writer, held, stats, selector)
                if seen % config.batch_size == 0:
                    progress(seen, info.num_frames)
            if self.region is None:
                self._detect(writer, held, stats, selector)
            self.commit(writer)
            progress(seen, info.num_frames)
        missing = [i for i in self.item.boxes if i >= seen]
        if missing:
            raise ProcessingError(
                f"{self.item.path}: annotation for frame {min(missing)} but only {seen} frames could be decoded"
            )
        self._check_end(info, seen, last_seconds)
        return seen, info.fps, info.width, info.height

    def _check_end(self, info, decoded: int, last_seconds: float | None) -> None:
        """A file cut short decodes without an error: compare with what its container declares."""
        problem = early_end(info, decoded, last_seconds)
        if problem is None:
            return
        if self.config.strict:
            raise ProcessingError(f"{self.item.path}: {problem} (--strict)")
        log.info("%s: %s", self.item.path, problem)  # a warning of the summary, printed by the CLI
        self.warnings.append(
            {"code": ENDED_EARLY, "video_id": self.item.video_id, "file": str(self.item.path), "message": problem}
        )

    def _hold(self, k: int, grey: np.ndarray) -> np.ndarray:
        held = self.scratch.array((self.config.roi_frames, *grey.shape))[k]
        np.copyto(held, grey)
        return held

    def _detect(
        self, writer: _NpyWriter, held: list[GreyFrame], stats: MotionStats, selector: FrameSelector
    ) -> None:
        """Detect the scan region from the held first frames' statistics, then letterbox those frames."""
        if not held:
            raise ProcessingError(f"{self.item.path}: no frame could be decoded; the file is corrupt")
        if stats.count >= 2:
            self.set_region(region_from_stats(stats, source=str(self.item.path)))
        else:
            height, width = held[0].grey.shape
            self.set_region(full_frame_region(width, height))
        for frame in held:
            self.take(writer, frame, selector)
        held.clear()


def _write_record(out: Path, file: str, record: dict) -> None:
    # Compact JSON: the C encoder (indent forces the slow pure-Python one; records hold every frame).
    write_text_atomic(out / "records" / f"{file}.json", json.dumps(record, separators=(",", ":")) + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _prepare_out(out: Path, listed: list[tuple[Path, str, SourceList]], config: ExtractConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if len(listed) == 1:
        settings = {"format": STORE_FORMAT, "source": str(listed[0][0].resolve()), "config": config.fingerprint()}
    else:
        sources = [{"name": name, "path": str(path.resolve())} for path, name, _ in listed]
        settings = {"format": STORE_FORMAT, "sources": sources, "config": config.fingerprint()}
    path = out / "extract.json"
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = None
        if previous != settings:
            raise InputError(
                f"{out}: already holds an extraction with other settings or source ({path}); "
                "use a new output folder or delete this one"
            )
    else:
        if any(out.iterdir()):
            raise InputError(
                f"{out}: folder is not empty and is not a usvid store; choose an empty or new folder"
            )
        write_json_atomic(path, settings)
    # Temporary files a killed run left: only the names usvid's own writers give them.
    for sub in ("frames", "masks", "records"):
        for stale in (out / sub).glob(".*.tmp") if (out / sub).is_dir() else ():
            stale.unlink(missing_ok=True)
    for name in ("videos.csv", "frames.csv", STORE_JSON, "extract.json"):
        for stale in out.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def _inputs_digest(item: SourceItem) -> str:
    """What a video's record was extracted from: the listing's item (row, label, boxes) and its files' signatures."""
    described = {
        "item": asdict(item),
        "files": [file_signature(item.path), *(file_signature(p) for p in item.mask_paths)],
    }
    return hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _read_record(out: Path, file: str) -> dict | None:
    path = out / "records" / f"{file}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # missing, or damaged by hand: extracted again
    ok = isinstance(record, dict) and isinstance(record.get("video"), dict) and isinstance(record.get("frames"), list)
    return record if ok else None


def _still_valid(record: dict, out: Path, file: str, inputs: str, size: int) -> bool:
    """The record was made from these inputs and its arrays are whole (a truncated array is extracted again)."""
    if record.get("inputs") != inputs:
        return False
    frames = record["frames"]
    if array_problem(out / "frames" / f"{file}.npy", (len(frames), size, size)):
        return False
    masks = sum(1 for f in frames if isinstance(f, dict) and int(f.get("mask_index", -1)) >= 0)
    return not masks or array_problem(out / "masks" / f"{file}.npy", (masks, size, size)) is None


def _with_split(record: dict, split: str, out: Path, file: str) -> dict:
    """A reused record in the split the current listing gives its patient (rewritten only when it moved)."""
    if record["video"].get("split") != split:
        record["video"]["split"] = split
        for frame in record["frames"]:
            frame["split"] = split
        _write_record(out, file, record)
    return record


def _forget(out: Path, file: str) -> None:
    """Remove a video's record, then its arrays: a run killed in between leaves arrays without a record, redone."""
    (out / "records" / f"{file}.json").unlink(missing_ok=True)
    (out / "frames" / f"{file}.npy").unlink(missing_ok=True)
    (out / "masks" / f"{file}.npy").unlink(missing_ok=True)


def _remove_unlisted(out: Path, files: set[str]) -> int:
    """Remove the records and arrays of videos no longer listed; returns how many records went.

    Only names :func:`file_stem` makes, in the store's own sub-folders, are touched: a file usvid did not
    write stays.
    """
    removed = 0
    for sub in ("records", "frames", "masks"):  # records first, see _forget
        folder = out / sub
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            match = RECORD_NAME.match(path.name)
            ours = match and path.suffix == (".json" if sub == "records" else ".npy") and path.is_file()
            if ours and match["file"] not in files:
                path.unlink()
                removed += sub == "records"
    return removed


class _Stopped(Exception):
    """Raised inside a job when the extraction stops: before it starts (a ``strict`` failure) or while it runs
    (Ctrl-C, an error of the extraction itself)."""


def _run_jobs(
    todo: list[tuple[int, SourceItem, str, str]],
    num_items: int,
    splits: dict[str, str],
    config: ExtractConfig,
    out: Path,
    notify: Progress,
    done: dict[int, dict],
) -> dict[int, Failure]:
    """Extract the ``todo`` videos, ``config.workers`` at a time; fills ``done`` with their records.

    Each finished video's record is written (atomically) as soon as it is done, so an interrupted run keeps
    every finished video. Returns the failures by item number. With ``strict``, the first failure starts no
    further video; the ones already running are finished, then it is raised. Ctrl-C stops the running videos
    at their next batch (their partial files are removed).
    """
    workers = min(config.workers or min(os.cpu_count() or 1, MAX_AUTO_WORKERS), len(todo)) or 1
    failed: dict[int, Failure] = {}
    no_more, abort = threading.Event(), threading.Event()
    started = itertools.count()
    scratch = _Scratch()

    def run(n: int, item: SourceItem, file: str, inputs: str) -> None:
        if no_more.is_set():
            raise _Stopped
        # The last videos (fewer left than workers) get FFmpeg's threads: there is no other video to fill the cores.
        threads = 1 if workers > 1 and len(todo) - next(started) >= workers else 0

        def on_batch(frames_done: int, frames_total: int) -> None:
            if abort.is_set():
                raise _Stopped
            notify(ExtractProgress(item.video_id, n, num_items, frames_done, frames_total))

        job = _VideoJob(item, splits[item.patient_id], config, out, file, threads, scratch)
        try:
            record = job.run(on_batch)
        except (_Stopped, MissingDependencyError):
            raise
        except Exception as err:  # one broken video must not stop the others
            if config.strict:
                no_more.set()  # here, not in the caller: this worker's next video must not start
                raise
            if isinstance(err, (ProcessingError, InputError)):
                message = str(err)
            else:
                log.exception("%s: unexpected error", item.path)
                message = f"{type(err).__name__}: {err}"
            failed[n] = Failure(str(item.path), message.split(f"{item.path}: ", 1)[-1])
            log.warning("%s: %s", item.path, message)
            notify(ExtractProgress(item.video_id, n, num_items, 0, 0, finished=True, failed=True))
            return
        record["inputs"] = inputs
        _write_record(out, file, record)
        done[n] = record
        frames = len(record["frames"])
        notify(ExtractProgress(item.video_id, n, num_items, frames, frames, finished=True))

    with ThreadPoolExecutor(workers, thread_name_prefix="usvid-extract") as pool:
        pending: set[Future] = {pool.submit(run, *job) for job in todo}
        first_error: BaseException | None = None
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    error = future.exception()
                    if error is not None and not isinstance(error, _Stopped) and first_error is None:
                        first_error = error
                        no_more.set()
        except BaseException:
            no_more.set()
            abort.set()  # running videos stop at their next batch and remove their partial files
            for future in pending:
                future.cancel()
            raise
    if first_error is not None:
        raise first_error
    return failed


def _list_all(paths: list[Path], category: str = LESION_CATEGORY) -> list[tuple[Path, str, SourceList]]:
    """List every source; each gets a distinct name (its folder's name, see :func:`source_name`)."""
    listed: list[tuple[Path, str, SourceList]] = []
    names: dict[str, Path] = {}
    for path in paths:
        name = source_name(path)
        if name in names:
            raise InputError(
                f"{path}: a second source named '{name}' (also {names[name]}); give every source its own folder name"
            )
        names[name] = path
        listed.append((path, name, list_sources(path, category)))
    return listed


def _check_classes(classes: tuple[str, ...] | None, listed: list[tuple[Path, str, SourceList]]) -> None:
    if classes is None:
        return
    known = {it.label.lower() for _, _, sources in listed for it in sources.items}
    for c in classes:
        if c.lower() not in known:
            raise ConfigError(
                f"--classes: no source has class '{c}'.{did_you_mean(c, known)} Classes: {', '.join(sorted(known))}"
            )


def _groups_of(name: str, names: set[str], groups: list[set[str]]) -> list[set[str]]:
    """The groups as ids of source ``name``: bare ids apply to every source, ``name:id`` to that source only."""
    out = []
    for group in groups:
        own = set()
        for member in group:
            prefix, sep, rest = member.partition(":")
            if sep and prefix in names:
                if prefix == name:
                    own.add(rest)
            else:
                own.add(member)
        out.append(own)
    return out


def _plan(
    listed: list[tuple[Path, str, SourceList]], config: ExtractConfig, groups: list[set[str]]
) -> tuple[list[SourceItem], dict[str, str]]:
    """The items to extract and each patient's split.

    Every source is split on its own (per patient, stratified, near-duplicate groups kept together) with the same
    seed, then the sources are concatenated: a patient lands in the same split as in a store of its source alone,
    so a multi-source store's test split is the union of the single-source test splits (what cross-dataset
    evaluation needs). With several sources, video and patient ids get the source's name as prefix
    (``busbra:bus_0002-l``, patient ``busbra:2``) so they never collide; with one source they are kept as they are.
    """
    multi = len(listed) > 1
    names = {name for _, name, _ in listed}
    items: list[SourceItem] = []
    splits: dict[str, str] = {}
    for _, name, sources in listed:
        wanted = None if config.classes is None else {c.lower() for c in config.classes}
        kept = [replace(it, dataset=name) for it in sources.items if wanted is None or it.label.lower() in wanted]
        split = assign_splits(
            {it.patient_id: it.label for it in kept},
            config.split,
            config.seed,
            _groups_of(name, names, groups),
            {it.video_id: it.patient_id for it in kept},
        )
        if multi:
            kept = [
                replace(it, video_id=f"{name}:{it.video_id}", patient_id=f"{name}:{it.patient_id}") for it in kept
            ]
            split = {f"{name}:{pid}": s for pid, s in split.items()}
        items += kept
        splits.update(split)
    return items, splits


def extract(
    src: str | Path | Sequence[str | Path],
    out: str | Path,
    config: ExtractConfig | None = None,
    progress: Progress | None = None,
) -> ExtractSummary:
    """Extract ``src`` (manifest, BUSI or BUS-BRA folder or one video; or a list of them) into the store ``out``.

    Several sources make one store: each video's ``dataset`` column names its source, ids are prefixed with it,
    and splits are made per source (see :func:`_plan`). ``config.groups`` applies to every source whose video
    ids it names (BUSI's ``near_duplicates.csv``: the BUSI source); ``name:id`` members name one source.

    Raises:
        InputError: ``src`` is not a dataset, ``out`` holds another extraction or is not a writable folder,
            bad settings (a ``--roi`` outside every video); with ``strict``, also the first failing video.
    Returns:
        counts per split and class, the failures (each names the file and the problem) and the warnings
        (listing faults where the file was used anyway, such as a BUS-BRA ``BBOX`` that disagrees with its mask).
    """
    config = config or ExtractConfig()
    sources = [src] if isinstance(src, (str, os.PathLike)) else list(src)
    if not sources:
        raise InputError("no source given: pass a manifest, a BUSI or BUS-BRA folder or a video, then OUT")
    paths = [check_path_text(p, "SRC") for p in sources]
    # Before any work: OUT must be a folder we can write, and not one of the sources.
    out = check_output_dir(out, inputs=paths, option="OUT")
    listed = _list_all(paths, config.category)
    failures = [f for _, _, listing in listed for f in listing.failures]
    if config.strict and failures:
        raise InputError(str(failures[0]))
    notes = [w for _, _, listing in listed for w in listing.warnings]
    for note in notes:  # info: the summary carries them, and the CLI prints them
        log.info("%s", note)
    _check_classes(config.classes, listed)
    groups = read_groups(config.groups) if config.groups else []
    items, splits = _plan(listed, config, groups)
    _check_roi_fits(items, config)
    _prepare_out(out, listed, config)
    notify = progress or (lambda event: None)
    done, todo, moved, changed, removed = _reuse(items, splits, out, config, notify)
    skipped = len(done)
    failed = _run_jobs(todo, len(items), splits, config, out, notify, done)
    failures += [failed[n] for n in sorted(failed)]
    records = [done[n] for n in sorted(done)]
    warnings = [w for r in records for w in r.get("warnings", [])]
    small = _split_warnings(records, config)
    if records:
        _write_store_files(out, records, items, listed, config, warnings, small)
    if moved:
        log.info("%s", split_change_text(moved))
    return ExtractSummary(
        out,
        _count(records),
        failures,
        len(records) - skipped,
        skipped,
        sum(r["video"]["deduped"] for r in records),
        notes + [Failure(w["file"], w["message"]) for w in warnings],
        changed=sum(1 for n, _, _, _ in todo if n in changed and n in done),
        removed=removed,
        ended_early=sum(w["code"] == ENDED_EARLY for w in warnings),
        split_changes=moved,
        split_warnings=small,
    )


def _split_warnings(records: list[dict], config: ExtractConfig) -> list[str]:
    """:func:`usvid.data.splits.split_warnings` of the extracted videos' patients, each line also logged."""
    videos = [r["video"] for r in records]
    lines = split_warnings({str(v["patient_id"]): str(v["split"]) for v in videos},
                           {str(v["patient_id"]): str(v["label"]) for v in videos}, config.split)
    for line in lines:
        log.info("%s", line)  # a warning of the summary, printed by the CLI
    return lines


def split_change_text(moved: list[tuple[str, str, str]], shown: int = 5) -> str:
    """One line saying which patients the current listing moved to another split."""
    listed = ", ".join(f"{pid} {old} -> {new}" for pid, old, new in moved[:shown])
    more = f" and {len(moved) - shown} more" if len(moved) > shown else ""
    return (
        f"splits changed since the last extraction: {len(moved)} patient{'s' if len(moved) != 1 else ''} moved "
        f"({listed}{more}); the splits are made from the whole current listing"
    )


def _reuse(
    items: list[SourceItem], splits: dict[str, str], out: Path, config: ExtractConfig, notify: Progress
) -> tuple[dict[int, dict], list[tuple[int, SourceItem, str, str]], list[tuple[str, str, str]], set[int], int]:
    """Sort the items into finished records reused as they are and videos to extract.

    Returns the reused records by item number, the jobs ``(number, item, file, inputs digest)``, the patients
    whose split moved ``(patient, old, new)``, the numbers of the jobs that redo a video extracted before from
    other inputs, and how many records of videos no longer listed were removed.
    """
    done: dict[int, dict] = {}
    todo: list[tuple[int, SourceItem, str, str]] = []
    before: dict[str, str] = {}  # patient -> the split its records had
    changed: set[int] = set()
    listed: set[str] = set()
    for n, item in enumerate(items, start=1):
        file, inputs = file_stem(item.video_id), _inputs_digest(item)
        listed.add(file)
        record = _read_record(out, file)
        if record is not None:
            before.setdefault(str(record["video"].get("patient_id")), str(record["video"].get("split")))
        if record is not None and _still_valid(record, out, file, inputs, config.size):
            done[n] = _with_split(record, splits[item.patient_id], out, file)
            notify(ExtractProgress(item.video_id, n, len(items), 0, 0, finished=True, skipped=True))
            continue
        if record is not None:
            changed.add(n)
            log.info("%s: inputs changed since it was extracted; extracting it again", item.path)
        _forget(out, file)
        todo.append((n, item, file, inputs))
    removed = _remove_unlisted(out, listed)
    moved = sorted((pid, old, splits[pid]) for pid, old in before.items() if pid in splits and splits[pid] != old)
    return done, todo, moved, changed, removed


def _write_store_files(
    out: Path,
    records: list[dict],
    items: list[SourceItem],
    listed: list[tuple[Path, str, SourceList]],
    config: ExtractConfig,
    warnings: list[dict],
    small_splits: Sequence[str] = (),
) -> None:
    _write_if_changed(out / "videos.csv", _csv_text(VIDEO_COLUMNS, [r["video"] for r in records]))
    _write_if_changed(out / "frames.csv", _csv_text(FRAME_COLUMNS, [f for r in records for f in r["frames"]]))
    meta = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "size": config.size,
        "labels": sorted({it.label for it in items}),
        "splits": list(SPLITS),
        "resize": RESIZE_RULE,
        "grey": "full-range luma (BT.601), uint8",
        "source_kind": "+".join(listing.kind for _, _, listing in listed),
        "sources": [{"name": name, "kind": listing.kind} for _, name, listing in listed],
        "config": config.fingerprint(),
    }
    if warnings:
        codes: dict[str, list[str]] = {}
        for w in warnings:
            codes.setdefault(w["code"], []).append(w["video_id"])
        meta["warnings"] = codes
    if small_splits:
        meta["split_warnings"] = list(small_splits)
    _write_if_changed(out / STORE_JSON, json.dumps(meta, indent=2) + "\n")


def _frame_size(item: SourceItem, backend: str) -> tuple[int, int] | None:
    """``(width, height)`` of an item's frames, or None when it cannot be read (it fails on its own later)."""
    try:
        if item.still:
            from usvid.video.images import read_image

            height, width = read_image(item.path, grey=True).shape
            return width, height
        with open_video(item.path, backend) as reader:
            return reader.info.width, reader.info.height
    except Exception:  # noqa: BLE001 - a probe only: the item's own extraction reports what is wrong with it
        return None


def _check_roi_fits(items: list[SourceItem], config: ExtractConfig) -> None:
    """Refuse a ``--roi`` that fits no video before anything is written (one that fits some fails the others).

    Stops at the first video it fits, so a good region costs one probe.
    """
    if config.roi is None:
        return
    sizes, first = [], None
    for item in items:
        size = _frame_size(item, config.backend)
        if size is None:
            continue
        try:
            fixed_scan_region(config.roi, *size)
            return
        except InputError as err:
            sizes.append(size)
            first = first or str(err)
    if first:
        found = ", ".join(sorted({f"{w}x{h}" for w, h in sizes}))
        raise ConfigError(f"{first}; it fits no video (frame sizes: {found}), nothing was written")


def _count(records: list[dict]) -> list[SplitCount]:
    videos, frames, annotated = Counter(), Counter(), Counter()
    for r in records:
        key = (r["video"]["split"], r["video"]["label"])
        videos[key] += 1
        frames[key] += len(r["frames"])
        annotated[key] += sum(f["annotated"] for f in r["frames"])
    order = {s: k for k, s in enumerate(SPLITS)}
    return [
        SplitCount(s, lab, videos[(s, lab)], frames[(s, lab)], annotated[(s, lab)])
        for s, lab in sorted(videos, key=lambda k: (order[k[0]], k[1]))
    ]
