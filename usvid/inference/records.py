"""The per-frame record: one JSON object per frame, the same keys from ``usvid predict`` and ``usvid stream``.

The schema is documented once, in the README ("Per-frame records"). Keys, in order:

- ``video_id``: the video's name (``usvid predict``: its output stem or manifest id; ``usvid stream``: the
  source as displayed, credentials removed);
- ``frame_index``: 0-based index of the frame in its video (the stream: in capture order);
- ``pts_seconds``: the frame's time in seconds (``usvid predict``: from the first frame);
- ``label``: the top class; ``probs``: class name -> probability;
- ``box``: ``[x, y, w, h]`` floats in frame pixels (COCO order), or ``null`` for no lesion;
- ``box_score``: the box's score in [0, 1], ``null`` exactly when ``box`` is ``null``;

then any extra keys of the writer (``usvid stream``: the model's own ``raw_*`` values when smoothing is on,
``roi`` and timings), never replacing one of the above. :func:`coco_results` turns records into COCO
detection results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usvid.boxes import Box

__all__ = ["CORE_KEYS", "LESION_CATEGORY_ID", "MAX_FRAMES_PER_VIDEO", "FrameRecord", "coco_image_id",
           "coco_results", "probs_dict"]

CORE_KEYS = ("video_id", "frame_index", "pts_seconds", "label", "probs", "box", "box_score")
#: COCO ``category_id`` of a lesion box (as in ``annotations.json``).
LESION_CATEGORY_ID = 1
#: :func:`coco_image_id` gives each video this many ids.
MAX_FRAMES_PER_VIDEO = 1_000_000
_DIGITS = 6  # probabilities, scores and seconds
_BOX_DIGITS = 2  # frame pixels


def probs_dict(class_names: Sequence[str], probs: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{class name: probability}`` rounded as records write it; ``probs`` ``(K,)`` float in [0, 1]."""
    return {name: round(float(p), _DIGITS) for name, p in zip(class_names, probs, strict=True)}


@dataclass(frozen=True)
class FrameRecord:
    """One frame's prediction as written to a JSONL file (see the module docstring for the keys).

    ``probs`` ``(K,)`` float in [0, 1], in ``class_names`` order; ``extra`` holds a writer's further keys.
    """

    video_id: str
    frame_index: int
    pts_seconds: float
    class_names: tuple[str, ...]
    probs: np.ndarray
    box: Box | None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.probs):
            raise ValueError(f"{len(self.class_names)} class names for {len(self.probs)} probabilities")
        clash = set(self.extra) & set(CORE_KEYS)
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} would replace record keys; rename them")

    @property
    def label(self) -> str:
        return self.class_names[int(np.argmax(self.probs))]

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the one place its keys and rounding are decided)."""
        box = self.box
        return {
            "video_id": self.video_id,
            "frame_index": int(self.frame_index),
            "pts_seconds": round(float(self.pts_seconds), _DIGITS),
            "label": self.label,
            "probs": probs_dict(self.class_names, self.probs),
            "box": None if box is None else box.to_coco(_BOX_DIGITS),
            "box_score": None if box is None else round(float(box.score or 0.0), _DIGITS),
            **self.extra,
        }


def coco_image_id(video_number: int, frame_index: int) -> int:
    """``video_number * 1_000_000 + frame_index``: the COCO ``image_id`` of a frame of the run's
    ``video_number``-th source (1-based, in the order the run lists its sources, failed ones included)."""
    if not 0 <= frame_index < MAX_FRAMES_PER_VIDEO:
        raise ValueError(f"frame index {frame_index} is outside 0..{MAX_FRAMES_PER_VIDEO - 1}; COCO image ids "
                         "give each video a million frames")
    return video_number * MAX_FRAMES_PER_VIDEO + frame_index


def coco_results(videos: Iterable[tuple[int, Iterable[Mapping[str, Any]]]]) -> list[dict[str, Any]]:
    """COCO detection results from ``(video_number, JSON records)`` per video (see :func:`coco_image_id`): one
    entry per frame with a box, ``{image_id, video_id, frame_index, category_id, bbox, score}``."""
    out = []
    for number, records in videos:
        for r in records:
            if r["box"] is None:
                continue
            out.append({
                "image_id": coco_image_id(number, r["frame_index"]),
                "video_id": r["video_id"],
                "frame_index": r["frame_index"],
                "category_id": LESION_CATEGORY_ID,
                "bbox": list(r["box"]),
                "score": r["box_score"],
            })
    return out
