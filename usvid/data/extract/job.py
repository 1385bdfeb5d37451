"""Extracting one video (or still image) into the store: decode, find its scan region, store its frames."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from usvid.data.extract.config import ExtractConfig
from usvid.data.extract.frames import FrameSelector, NpyPart, NpyWriter, Scratch, StoredFrames
from usvid.data.extract.records import ENDED_EARLY, VideoRecord, VideoRow, warning
from usvid.data.extract.segments import (
    MIN_SEGMENT_FRAMES,
    Cores,
    Segment,
    SegmentGroup,
    SharedRegion,
    plan_segments,
)
from usvid.data.sources import SourceItem
from usvid.errors import ProcessingError
from usvid.io import atomic_path
from usvid.video.pyav_backend import PyAVReader
from usvid.video.reader import GreyFrame, VideoReader, early_end, open_video
from usvid.video.roi import RegionDetector, ScanRegion, full_frame_region

log = logging.getLogger(__name__)


class _Pass(NamedTuple):
    """What one pass over a video's frames (or a segment's) stored."""

    stored: StoredFrames
    seen: int
    last_seconds: float | None


def _stitch(writer: NpyWriter, parts: list[NpyPart], passes: list[_Pass]) -> _Pass:
    """The passes over a video's segments as one: the later segments' frames (``parts``, closed) joined to
    ``writer``'s in order, and their rows after the first's."""
    first = passes[0]
    for part, later in zip(parts, passes[1:]):
        writer.join(part)
        first.stored.extend(later.stored)
    return _Pass(first.stored, sum(p.seen for p in passes), passes[-1].last_seconds)


def _report(progress: Callable[[int, int], None], num_frames: int, seen: int) -> None:
    progress(seen, num_frames)


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

    ``threads``: FFmpeg decoding threads (0: FFmpeg picks); ``scratch``: the worker thread's reusable buffer;
    ``parts``: segments a PyAV video is split into, decoded at once on the free ones of ``cores`` (see
    :mod:`usvid.data.extract.segments`; 1: not split).
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
        parts: int = 1,
        cores: Cores | None = None,
    ) -> None:
        self.item, self.split, self.config, self.out, self.file = item, split, config, out, file
        self.threads, self.scratch = threads, scratch or Scratch()
        self.parts, self.cores = parts, cores

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
        item = self.item
        with open_video(item.path, self.config.backend, threads=self.threads) as reader:
            info = reader.info
            check_annotations(item, info.width, info.height, info.num_frames)
            report = partial(_report, progress, info.num_frames)
            done = self._split(reader, writer, report) or self._sequential(reader, writer, report)
        missing = [i for i in item.boxes if i >= done.seen]
        if missing:
            raise ProcessingError(
                f"{item.path}: annotation for frame {min(missing)} but only {done.seen} frames could be "
                "decoded"
            )
        return _Decoded(done.stored, done.seen, info.fps, info.width, info.height,
                        self._end_warnings(info, done.seen, done.last_seconds))

    def _sequential(self, reader: VideoReader, writer: NpyWriter, report: Callable[[int], None]) -> _Pass:
        # grey_frames is closed before the reader, also when a video stops early: the reader may decode
        # ahead on another thread. raw_luma: the range expansion runs on the letterboxed frames, not on the
        # full ones.
        with closing(reader.grey_frames(raw_luma=True)) as frames:
            region = SharedRegion(self._given_region(reader.info.width, reader.info.height))
            selector = FrameSelector(self.config, set(self.item.boxes))
            return self._pass(frames, writer, selector, region, report)

    def _split(self, reader: VideoReader, writer: NpyWriter, report: Callable[[int], None]) -> _Pass | None:
        """The video as segments decoded at once (see :mod:`usvid.data.extract.segments`), stitched; ``None``:
        not split (one segment, dedupe, not PyAV) or a segment failed, and the writer holds nothing."""
        config, info = self.config, reader.info
        if self.parts < 2 or self.cores is None or config.dedupe or not isinstance(reader, PyAVReader):
            return None
        region = SharedRegion(self._given_region(info.width, info.height))
        first = 0 if region.known else config.region.frames
        segments = plan_segments(reader.keyframes(), info.num_frames, self.parts, first, MIN_SEGMENT_FRAMES)
        if len(segments) < 2:
            return None
        group = SegmentGroup(region, len(segments), report)
        parts = [writer.part(offset) for offset in self._offsets(reader, segments)[1:]]
        writers = [writer, *parts]

        def run(k: int, segment: Segment) -> _Pass:
            before = reader.seconds_of(segment.start - 1) if k else None
            selector = FrameSelector(config, set(self.item.boxes), before)
            with closing(reader.grey_segment(segment.start, segment.stop, raw_luma=True)) as frames:
                return self._pass(frames, writers[k], selector, region, group.reporter(k), detect=k == 0)

        try:
            passes = self.cores.run(segments, run, group)
        finally:
            for part in parts:
                part.close()
        if passes is None:
            log.info("%s: a segment failed; extracting it from the first frame", self.item.path)
            writer.restart()
            return None
        return _stitch(writer, parts, passes)

    def _offsets(self, reader: PyAVReader, segments: list[Segment]) -> list[int]:
        """Where each segment's frames go in the store: after the frames kept before it, counted on the
        index's times (each decoded frame is checked to have them; without dedupe, the selector decides)."""
        selector = FrameSelector(self.config, set(self.item.boxes))
        offsets = [0]
        for segment in segments[:-1]:
            kept = sum(selector.keep(i, reader.seconds_of(i)) for i in range(segment.start, segment.stop))
            offsets.append(offsets[-1] + kept)
        return offsets

    def _pass(
        self,
        frames: Iterable[GreyFrame],
        writer: NpyWriter | NpyPart,
        selector: FrameSelector,
        region: SharedRegion,
        report: Callable[[int], None],
        detect: bool = True,
    ) -> _Pass:
        """Store the kept ``frames`` (consecutive, of one video or one segment) in the scan region.

        Until ``region`` is known the frames are held (copies: the reader's memory is reused): with
        ``detect``, the detector takes their statistics as they come, while the decoder is the one that is
        busy, and publishes the region; a later segment holds as many as the detector looks at, then waits.
        """
        config = self.config
        stored = detector = None
        if region.known:
            stored = StoredFrames(self.item, self.split, region.wait(), config)
        elif detect:
            detector = RegionDetector(config.region.frames, str(self.item.path))
        held: list[GreyFrame] = []
        seen, last_seconds = 0, None
        for frame in frames:
            seen += 1
            last_seconds = frame.seconds
            if stored is not None:
                if selector.keep(frame.index, frame.seconds):
                    stored.take(writer, frame)
            else:
                held.append(frame._replace(grey=self._hold(len(held), frame.grey)))
                if detector is not None and detector.add(held[-1].grey, frame.limited_range):
                    region.publish(detector.region())
                if region.known or len(held) == config.region.frames:
                    stored = self._release(writer, region.wait(), held, selector)
            if seen % config.batch_size == 0:
                report(seen)
        if stored is None:
            if detector is not None:
                region.publish(detector.region())
            stored = self._release(writer, region.wait(), held, selector)
        stored.flush(writer)
        report(seen)
        return _Pass(stored, seen, last_seconds)

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

    def _release(
        self, writer: NpyWriter | NpyPart, region: ScanRegion, held: list[GreyFrame], selector: FrameSelector
    ) -> StoredFrames:
        """Store the held first frames once the scan region is known."""
        stored = StoredFrames(self.item, self.split, region, self.config)
        for frame in held:
            if selector.keep(frame.index, frame.seconds):
                stored.take(writer, frame)
        held.clear()
        return stored
