"""Extracting one video (or still image) into the store: decode, find its scan region, store its frames."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from usvid.data.extract.config import ExtractConfig
from usvid.data.extract.frames import FrameSelector, NpyWriter, Scratch, StoredFrames
from usvid.data.extract.records import ENDED_EARLY, VideoRecord, VideoRow, warning
from usvid.data.sources import SourceItem
from usvid.errors import ProcessingError
from usvid.io import atomic_path
from usvid.video.reader import GreyFrame, early_end, open_video
from usvid.video.roi import RegionDetector, ScanRegion, full_frame_region

log = logging.getLogger(__name__)


class _Decoded(NamedTuple):
    """What decoding a video found out, besides its frames."""

    stored: StoredFrames
    num_frames: int
    fps: float
    width: int
    height: int
    warnings: list[dict]


def check_annotations(item: SourceItem, width: int, height: int, num_frames: int) -> None:
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


class VideoJob:
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
        scratch: Scratch | None = None,
    ) -> None:
        self.item, self.split, self.config, self.out, self.file = item, split, config, out, file
        self.threads, self.scratch = threads, scratch or Scratch()

    def run(self, progress: Callable[[int, int], None]) -> VideoRecord:
        writer = NpyWriter(self.out / "frames" / f"{self.file}.npy", self.config.size, estimate=1000)
        try:
            done = self._still(writer) if self.item.still else self._video(writer, progress)
            if not done.stored.rows:
                raise ProcessingError(f"{self.item.path}: no frame was kept; check --every/--fps")
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        stored = done.stored
        masks_path = self.out / "masks" / f"{self.file}.npy"
        if stored.masks:
            with atomic_path(masks_path) as tmp, tmp.open("wb") as f:
                np.save(f, np.stack(stored.masks))
        else:  # one left by an earlier extraction of this video, when it still had boxes
            masks_path.unlink(missing_ok=True)
        video = VideoRow(self.item, self.split, stored.region, done.num_frames, done.fps, done.width, done.height,
                         len(stored.rows), stored.deduped, self.file)
        return VideoRecord(video, tuple(stored.rows), tuple(done.warnings))

    def _given_region(self, width: int, height: int) -> ScanRegion | None:
        """The region known before any frame is seen: ``--roi`` (checked against the frame), or the whole frame
        when detection is off; ``None``: detect it."""
        region = self.config.region
        if region.roi is not None:
            return region.fixed(width, height, where=f"--roi for {self.item.path.name}:")
        return None if region.detect else full_frame_region(width, height)

    def _still(self, writer: NpyWriter) -> _Decoded:
        from usvid.data.busbra import cross_check
        from usvid.data.busi import load_masks
        from usvid.video.images import read_image

        item = self.item
        image = read_image(item.path, grey=True)
        height, width = image.shape
        lesion, boxes = None, []
        if item.annotated_masks:
            lesion, boxes = load_masks(item, width, height)
            item = replace(item, boxes={0: boxes})
        warnings = cross_check(item, width, height, boxes)
        for w in warnings:
            log.warning("%s: %s", w["file"], w["message"])
        region = self._given_region(width, height) or full_frame_region(width, height)
        stored = StoredFrames(item, self.split, region, self.config, lesion)
        stored.take(writer, GreyFrame(0, 0.0, image))
        stored.flush(writer)
        return _Decoded(stored, 1, 0.0, width, height, warnings)

    def _video(self, writer: NpyWriter, progress: Callable[[int, int], None]) -> _Decoded:
        config, item = self.config, self.item
        # grey_frames is closed before the reader, also when a video stops early: the reader may decode ahead
        # on another thread. raw_luma: the range expansion runs on the letterboxed frames, not on the full ones.
        with (
            open_video(item.path, config.backend, threads=self.threads) as reader,
            closing(reader.grey_frames(raw_luma=True)) as frames,
        ):
            info = reader.info
            check_annotations(item, info.width, info.height, info.num_frames)
            selector = FrameSelector(config, set(item.boxes))
            region = self._given_region(info.width, info.height)
            stored = None if region is None else StoredFrames(item, self.split, region, config)
            detector = RegionDetector(config.region.frames, str(item.path))
            held: list[GreyFrame] = []
            seen, last_seconds = 0, None
            for frame in frames:
                seen += 1
                last_seconds = frame.seconds
                if stored is not None:
                    if selector.keep(frame.index, frame.seconds):
                        stored.take(writer, frame)
                else:
                    # Hold the first frames (copies: the reader's memory is reused) until the scan region is known;
                    # the detector takes their statistics as they come, while the decoder is the one that is busy.
                    held.append(frame._replace(grey=self._hold(len(held), frame.grey)))
                    if detector.add(held[-1].grey, frame.limited_range):
                        stored = self._detected(writer, detector, held, selector)
                if seen % config.batch_size == 0:
                    progress(seen, info.num_frames)
            if stored is None:
                stored = self._detected(writer, detector, held, selector)
            stored.flush(writer)
            progress(seen, info.num_frames)
        missing = [i for i in item.boxes if i >= seen]
        if missing:
            raise ProcessingError(
                f"{item.path}: annotation for frame {min(missing)} but only {seen} frames could be decoded"
            )
        return _Decoded(stored, seen, info.fps, info.width, info.height, self._end_warnings(info, seen, last_seconds))

    def _end_warnings(self, info, decoded: int, last_seconds: float | None) -> list[dict]:
        """A file cut short decodes without an error: compare with what its container declares."""
        problem = early_end(info, decoded, last_seconds)
        if problem is None:
            return []
        if self.config.strict:
            raise ProcessingError(f"{self.item.path}: {problem} (--strict)")
        log.info("%s: %s", self.item.path, problem)  # a warning of the summary, printed by the CLI
        return [warning(ENDED_EARLY, self.item, problem)]

    def _hold(self, k: int, grey: np.ndarray) -> np.ndarray:
        held = self.scratch.array((self.config.region.frames, *grey.shape))[k]
        np.copyto(held, grey)
        return held

    def _detected(
        self, writer: NpyWriter, detector: RegionDetector, held: list[GreyFrame], selector: FrameSelector
    ) -> StoredFrames:
        """The scan region from the held first frames' statistics; those frames are then stored."""
        stored = StoredFrames(self.item, self.split, detector.region(), self.config)
        for frame in held:
            if selector.keep(frame.index, frame.seconds):
                stored.take(writer, frame)
        held.clear()
        return stored
