"""One video's frames on their way into the store: which to keep, letterboxing in batches, the ``.npy`` writer."""

from __future__ import annotations

import io
import math
import os
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from usvid.boxes import Box
from usvid.data.extract.config import ExtractConfig
from usvid.data.extract.records import FrameRow
from usvid.data.sources import SourceItem
from usvid.errors import ProcessingError
from usvid.io import file_mode
from usvid.video.reader import GreyFrame, expand_range
from usvid.video.roi import ScanRegion


class FrameSelector:
    """Which source frames to keep: every K-th, or the first frame of each 1/F-second bucket, plus annotated.

    ``previous_seconds``: the time of the frame before the first one asked about (a segment of a video starts
    where that frame left the buckets, see :mod:`usvid.data.extract.segments`); ``None``: the video's start.
    """

    def __init__(
        self, config: ExtractConfig, annotated: set[int], previous_seconds: float | None = None
    ) -> None:
        self.every, self.fps, self.annotated = config.every, config.fps, annotated
        started = previous_seconds is None or self.fps is None
        self._bucket = -1 if started else self._bucket_of(previous_seconds)

    def _bucket_of(self, seconds: float) -> int:
        return math.floor(seconds * self.fps + 1e-6)

    def keep(self, index: int, seconds: float) -> bool:
        chosen = True
        if self.every is not None:
            chosen = index % self.every == 0
        elif self.fps is not None:
            bucket = self._bucket_of(seconds)
            chosen = bucket > self._bucket
            if chosen:
                self._bucket = bucket
        return chosen or index in self.annotated


class NpyWriter:
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
        buf = io.BytesIO()
        header = {"descr": "|u1", "fortran_order": False, "shape": (count, self.size, self.size)}
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue()

    def append(self, frames: np.ndarray) -> None:
        self._file.write(memoryview(np.ascontiguousarray(frames, dtype=np.uint8)).cast("B"))
        self.count += frames.shape[0]

    def part(self, offset: int) -> NpyPart:
        """A writer of the frames that go ``offset`` frames into this file (a later segment of the video)."""
        return NpyPart(self, offset)

    def join(self, part: NpyPart) -> None:
        """Count the frames of ``part``, closed, which starts where this writer's frames end."""
        if part.offset != self.count:
            raise ValueError(f"a part at frame {part.offset} joined to {self.count} frames; they must meet")
        self.count += part.count
        self._file.seek(0, os.SEEK_END)

    def restart(self) -> None:
        """Forget the frames written so far (parts' too: close them first)."""
        self._file.seek(len(self._header))
        self._file.truncate()
        self.count = 0

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


class NpyPart:
    """Frames written straight into their place in a :class:`NpyWriter`'s file, from ``offset`` frames on: a
    later segment of a video writes while the segments before it do, and nothing is copied to join them."""

    def __init__(self, writer: NpyWriter, offset: int) -> None:
        self.offset, self.count = offset, 0
        self._file = writer.tmp_path.open("r+b")
        self._file.seek(len(writer._header) + offset * writer.size * writer.size)

    def append(self, frames: np.ndarray) -> None:
        self._file.write(memoryview(np.ascontiguousarray(frames, dtype=np.uint8)).cast("B"))
        self.count += frames.shape[0]

    def close(self) -> None:
        self._file.close()


class Scratch(threading.local):
    """A worker thread's buffer for the first frames of a video, reused from one video to the next.

    Fresh memory is not free: the kernel zeroes every page on first touch (some 2 us per 4 KiB page on our
    CI machine, 20 ms for 96 frames of 854x500).
    """

    def array(self, shape: tuple[int, ...]) -> np.ndarray:
        buf = getattr(self, "buf", None)
        if buf is None or buf.shape != shape:
            self.buf = buf = np.empty(shape, np.uint8)
        return buf


class Deduper:
    """Drops a frame whose mean absolute difference to the previous kept one is below ``threshold`` (a still probe)."""

    def __init__(self, threshold: float) -> None:
        self.threshold, self.dropped = threshold, 0
        self._last: np.ndarray | None = None

    def keep(self, frame: np.ndarray, annotated: bool) -> bool:
        """``frame``: ``(S, S)`` uint8 as stored; annotated frames are always kept."""
        last = self._last
        if not annotated and last is not None and float(np.abs(frame.astype(np.int16) - last).mean()) < self.threshold:
            self.dropped += 1
            return False
        self._last = frame.astype(np.int16)
        return True


class StoredFrames:
    """The kept frames of one video, in its scan region: letterboxed in batches, then written with their rows.

    :meth:`take` letterboxes a frame (the one frame path, :class:`usvid.preprocess.ScanLetterbox`) into the
    batch; :meth:`flush` expands limited-range luma, drops near-duplicates and appends the batch to the writer,
    recording a :class:`FrameRow` (and the lesion mask of an annotated frame) per frame written.

    Args:
        lesion_mask: ``(H, W)`` uint8 source-size lesion mask of a still image (BUSI, BUS-BRA); annotated frames
            of videos get the mask of their boxes.
    """

    def __init__(
        self,
        item: SourceItem,
        split: str,
        region: ScanRegion,
        config: ExtractConfig,
        lesion_mask: np.ndarray | None = None,
    ) -> None:
        self.item, self.split, self.region = item, split, region
        self.letterbox = region.letterbox(config.size)
        self.lesion_mask = lesion_mask
        self.deduper = Deduper(config.dedupe_threshold) if config.dedupe else None
        # Letterboxed frames of one batch; the padding stays 0 (range expansion and blanking keep 0 at 0).
        self._batch = np.zeros((config.batch_size, config.size, config.size), np.uint8)
        self._taken: list[GreyFrame] = []  # frames in the batch (their source index, seconds and range)
        self.rows: list[FrameRow] = []
        self.masks: list[np.ndarray] = []  # (S, S) uint8 lesion masks of the annotated rows

    @property
    def deduped(self) -> int:
        return 0 if self.deduper is None else self.deduper.dropped

    def extend(self, later: StoredFrames) -> None:
        """Append the rows and masks of a later segment of the video, flushed, whose frames are written after
        these (no dedupe: it compares each frame with the one kept before)."""
        rows, masks = len(self.rows), len(self.masks)
        for r in later.rows:
            mask_index = r.mask_index + masks if r.mask_index >= 0 else -1
            self.rows.append(replace(r, store_index=r.store_index + rows, mask_index=mask_index))
        self.masks += later.masks

    def take(self, writer: NpyWriter | NpyPart, frame: GreyFrame) -> None:
        """Letterbox one kept frame (``(H, W)`` uint8, may be a view of the decoder's memory)."""
        self.letterbox.into(frame.grey, self._batch[len(self._taken)])
        self._taken.append(frame._replace(grey=None))
        if len(self._taken) == len(self._batch):
            self.flush(writer)

    def flush(self, writer: NpyWriter | NpyPart) -> None:
        """Finish the letterboxed frames taken so far (range, near-duplicates) and write them."""
        if not self._taken:
            return
        stored = self._batch[: len(self._taken)]
        if self._taken[-1].limited_range:
            # Commutes with resampling up to rounding (1 grey level), and keeps blanked pixels at 0.
            expand_range(stored)
        written = []
        for j, (frame, pixels) in enumerate(zip(self._taken, stored)):
            annotated = frame.index in self.item.boxes or (self.item.annotated_masks and frame.index == 0)
            if self.deduper is not None and not self.deduper.keep(pixels, annotated):
                continue
            written.append(j)
            self.rows.append(self._row(frame, annotated))
        if written:
            writer.append(stored if len(written) == len(stored) else stored[written])
        self._taken.clear()

    def _row(self, frame: GreyFrame, annotated: bool) -> FrameRow:
        boxes = self._map_boxes(frame.index, self.item.boxes.get(frame.index, [])) if annotated else []
        mask_index = -1
        if annotated:
            box = self.letterbox.box
            if self.lesion_mask is not None:
                self.masks.append(box.mask(self.region.apply(self.lesion_mask)))
            else:
                self.masks.append(box.boxes_mask(boxes))
            mask_index = len(self.masks) - 1
        return FrameRow(self.item, self.split, frame.index, frame.seconds, len(self.rows), annotated,
                        tuple(boxes), mask_index)

    def _map_boxes(self, idx: int, boxes: list[Box]) -> list[Box]:
        """Source-pixel boxes -> stored-pixel boxes, clipped to the scan region."""
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
            out.append(self.letterbox.box.box((cx0, cy0, cx1, cy1)))
        return out
