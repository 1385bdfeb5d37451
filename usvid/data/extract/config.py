"""The settings of one extraction: :class:`ExtractConfig`, and the part of them that decides a store's content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from usvid.data.manifest import LESION_CATEGORY
from usvid.data.splits import SplitFractions
from usvid.errors import ConfigError, unknown_name
from usvid.video.reader import BACKENDS, DEFAULT_BATCH_SIZE
from usvid.video.roi import RegionConfig

MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction.

    Attributes:
        size: stored frames are ``size x size`` (letterboxed).
        every: keep every K-th source frame; ``fps``: keep about F frames per second (not both).
            Annotated frames are always kept.
        split: patient fractions per split; ``seed`` makes the split deterministic.
        region: the scan region, as in ``usvid predict`` and ``usvid stream``: a fixed ``--roi`` ``(x, y, w, h)``
            in source pixels, else detected per video from its first ``region.frames`` frames (``detect=False``:
            the whole frame).
        dedupe: drop a frame whose mean absolute difference to the previous kept frame (stored pixels)
            is below ``dedupe_threshold`` grey levels (a still probe); annotated frames are never dropped.
        strict: stop at the first failure instead of reporting it and going on.
        groups: CSV of near-duplicate groups (``group,image``) kept in one split.
        backend: video decoder (``auto``, ``pyav``, ``decord``, ``torchcodec``).
        workers: videos extracted at once (0: one per CPU core, at most :data:`MAX_AUTO_WORKERS`: each holds
            its first ``region.frames`` frames, 200 MB at 1080p). With more than one, each video is decoded
            on one thread (FFmpeg decodes a stream faster per CPU second alone than with frame threads, and
            the videos fill the cores), except the last ones (and every one with one worker): a PyAV video
            is split at keyframes into one segment per core, each decoded on one thread, the later ones on
            the cores no other video works on (:mod:`usvid.data.extract.segments`; not with ``dedupe``);
            other videos are decoded on a thread of their own beside their letterboxing.
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
    region: RegionConfig = field(default_factory=RegionConfig)
    dedupe: bool = False
    dedupe_threshold: float = 1.0
    strict: bool = False
    groups: Path | None = None
    backend: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE
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
        if self.batch_size < 1:
            raise ConfigError(f"batch_size {self.batch_size}: must be >= 1")
        if self.dedupe_threshold < 0:
            raise ConfigError(f"dedupe_threshold {self.dedupe_threshold}: must be >= 0")
        if self.workers < 0:
            raise ConfigError(f"--workers {self.workers}: must be >= 0 (0: one per CPU core)")
        if self.classes is not None and not all(c.strip() for c in self.classes):
            raise ConfigError(f"--classes {','.join(self.classes)}: class names must not be empty, such as benign,malignant")
        if not self.category.strip():
            raise ConfigError("--category: must not be empty; the default is 'lesion'")

    def fingerprint(self) -> dict:
        """The settings that change the store's content (``strict``, ``batch_size`` and ``workers`` do not).

        Written to ``extract.json`` and ``store.json``; its keys stay those of earlier versions (``roi`` and
        ``roi_frames`` at the top level), so an existing store resumes.
        """
        groups = hashlib.sha1(Path(self.groups).read_bytes()).hexdigest() if self.groups else None
        # ``classes`` only when given: stores made before it existed keep their fingerprint (and resume).
        classes = {"classes": sorted(self.classes)} if self.classes is not None else {}
        category = {"category": self.category} if self.category != LESION_CATEGORY else {}
        region = self.region.to_flat()
        whole_frame = {"detect_roi": False} if not self.region.detect and self.region.roi is None else {}  # likewise
        return {
            "size": self.size,
            "every": self.every,
            "fps": self.fps,
            "split": list(self.split.as_tuple()),
            "seed": self.seed,
            "roi": region["roi"],
            "dedupe": self.dedupe,
            "dedupe_threshold": self.dedupe_threshold if self.dedupe else None,
            "groups_sha1": groups,
            "backend": self.backend,
            "roi_frames": region["roi_frames"],
            **whole_frame,
            **classes,
            **category,
        }
