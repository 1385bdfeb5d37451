"""One video extracted as several segments at once, split at keyframes, for a video that runs alone.

One decoder thread decodes slower than FFmpeg's frame threads, and the work on each frame (letterboxing,
writing) cannot hide behind it; two single-threaded decoders at once decode a third faster than the frame
threads (``benchmarks/extract_bench.py``). So one of the last videos of a run is cut at keyframes near
``1/parts``, ``2/parts``, ... of its frames, and each segment is decoded and stored by a thread of its own,
the later ones only on cores no other video works on (:class:`Cores`); the job then stitches them into the
store the sequential extraction writes, byte for byte.

What keeps the bytes: each segment decodes from its keyframe and every frame is checked against the index
(its number and pts); the first segment holds at least the frames the scan region is detected from, and
the others hold their first frames until it is published; a segment's frame selector starts where the frame
before it left the ``--fps`` buckets; each segment writes its frames at their place in the ``.npy`` (counted
on the index's times) and its rows and masks are offset when stitching. Dedupe compares each frame with the
one kept before it, so a video is not split with dedupe on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from usvid.errors import UsvidError
from usvid.video.roi import ScanRegion

T = TypeVar("T")
# A segment costs a container of its own and a seek (some 3 ms, the decoding of ~8 frames at 854x500).
MIN_SEGMENT_FRAMES = 120
# Segments per core: a core that another video frees finds a segment left to take, so a split video's tail
# runs on every core (with one per core, a video whose job took its second segment runs it alone).
SEGMENTS_PER_CORE = 4
_WAIT_SECONDS = 0.05  # a segment waiting for a core looks again (it is also woken when one is freed)


class Halted(Exception):
    """Raised inside a segment when another segment of its video failed: it stops at its next batch."""


@dataclass(frozen=True)
class Segment:
    """Frames ``start..stop-1`` of a video (``stop=None``: to its end); ``start`` is a keyframe."""

    start: int
    stop: int | None


def plan_segments(
    keyframes: Sequence[int],
    num_frames: int,
    parts: int,
    first_frames: int,
    min_frames: int = MIN_SEGMENT_FRAMES,
) -> list[Segment]:
    """Up to ``parts`` segments (fewer for a short video: ``min_frames`` or more each) cut at the keyframes
    nearest ``k * num_frames / n``.

    The first segment has ``first_frames`` frames or more (the frames the scan region is detected from); a cut
    that cannot keep to that or to ``min_frames`` is left out, so one segment means: do not split.
    """
    n = max(1, min(parts, num_frames // max(min_frames, 1)))
    cuts: list[int] = []
    for k in range(1, n):
        target = k * num_frames / n
        cut = min(keyframes, key=lambda key: abs(key - target))
        previous = cuts[-1] if cuts else 0
        if cut >= max(first_frames, previous + min_frames) and num_frames - cut >= min_frames:
            cuts.append(cut)
    bounds = [0, *cuts]
    return [Segment(a, b) for a, b in zip(bounds, [*cuts, None])]


class SharedRegion:
    """The scan region of a video as its segments learn it: given, or published by the first segment once it
    has detected it; the other segments :meth:`wait` for it."""

    def __init__(self, region: ScanRegion | None) -> None:
        self._region = region
        self._settled = threading.Event()
        if region is not None:
            self._settled.set()

    @property
    def known(self) -> bool:
        return self._settled.is_set()

    def publish(self, region: ScanRegion) -> None:
        self._region = region
        self._settled.set()

    def fail(self) -> None:
        """Wake the waiting segments with :class:`Halted` (the segment that detects it failed)."""
        self._settled.set()

    def wait(self) -> ScanRegion:
        self._settled.wait()
        if self._region is None:
            raise Halted
        return self._region


class SegmentGroup:
    """The segments of one video: their shared region, their summed progress, and halting them together.

    ``progress(frames_done)``: the video's progress, called from the segments' threads.
    """

    def __init__(self, region: SharedRegion, count: int, progress: Callable[[int], None]) -> None:
        self.region, self._progress = region, progress
        self._seen = [0] * count
        self._halted = threading.Event()

    def reporter(self, k: int) -> Callable[[int], None]:
        """Segment ``k``'s progress callback (its frames so far); it raises :class:`Halted` once halted."""

        def report(seen: int) -> None:
            if self._halted.is_set():
                raise Halted
            self._seen[k] = seen
            self._progress(sum(self._seen))

        return report

    def halt(self) -> None:
        self._halted.set()
        self.region.fail()


class Cores:
    """The cores of one extraction, shared by its videos' jobs and segments.

    A video's job always runs, and counts while it does (:meth:`job`); a segment beyond a video's first starts
    only on a core no one works on, and one not started by the time the job is done with the first is run by
    the job itself. So a split never crowds the cores: beside other videos, a video's segments run one after
    the other on its job's thread, and spread as soon as the other videos finish.

    ``pool``: runs the segments; threads enough for every segment that may wait for a core.
    """

    def __init__(self, count: int, pool: Executor) -> None:
        self.count, self._pool = count, pool
        self._busy = 0
        self._changed = threading.Condition()

    @contextmanager
    def job(self) -> Iterator[None]:
        with self._changed:
            self._busy += 1
        try:
            yield
        finally:
            self._leave()

    def run(
        self, segments: Sequence[Segment], run: Callable[[int, Segment], T], group: SegmentGroup
    ) -> list[T] | None:
        """``run(k, segment)`` for each segment: the first on this thread, the others on a free core, else
        here after the first; their results.

        A segment that fails halts the others. ``None``: one failed with a :class:`UsvidError` (a corrupt
        frame, an inexact seek, no scan region); the caller extracts the video sequentially, which is the
        reference, errors included. Any other error (a stop) is raised once every started segment stopped.
        """
        claims = [threading.Lock() for _ in segments]  # whoever takes a segment's lock runs it

        def on_a_free_core(k: int) -> T | None:
            while not self._enter():
                if claims[k].locked():
                    return None
            try:
                return run(k, segments[k]) if claims[k].acquire(blocking=False) else None
            finally:
                self._leave()

        futures = {k: self._pool.submit(on_a_free_core, k) for k in range(1, len(segments))}
        results: dict[int, T] = {}
        errors: list[BaseException] = []

        def settle(k: int, call: Callable[[], T]) -> None:
            try:
                results[k] = call()
            except BaseException as err:  # every started segment is waited for before anything is raised
                group.halt()
                errors.append(err)

        settle(0, partial(run, 0, segments[0]))
        running = []
        for k in futures:
            if claims[k].acquire(blocking=False):  # not started: here, unless another segment failed
                self._wake()
                if not errors:
                    settle(k, partial(run, k, segments[k]))
            else:
                running.append(k)
        for k in running:
            settle(k, futures[k].result)
        fatal = [e for e in errors if not isinstance(e, (Halted, UsvidError))]
        if fatal:
            raise fatal[0]
        return None if errors else [results[k] for k in range(len(segments))]

    def _enter(self) -> bool:
        """Take a free core, waiting a moment for one."""
        with self._changed:
            if self._busy >= self.count:
                self._changed.wait(_WAIT_SECONDS)
            if self._busy >= self.count:
                return False
            self._busy += 1
            return True

    def _leave(self) -> None:
        with self._changed:
            self._busy -= 1
            self._changed.notify_all()

    def _wake(self) -> None:
        """Let the segments waiting for a core look at their claims again."""
        with self._changed:
            self._changed.notify_all()
