"""Typed containers the stream's stages hand each other: frame results, overlaid frames, events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from usvid.boxes import Box
from usvid.inference.records import FrameRecord, probs_dict
from usvid.streaming.sources import CapturedFrame, SourceState
from usvid.video.roi import ScanRegion


@dataclass(frozen=True)
class FrameResult:
    """The model's answer for one captured frame.

    Attributes:
        frame: the captured frame.
        class_names: the ``K`` class names, in ``probs`` order.
        probs: ``(K,)`` float32 in [0, 1], what is shown (smoothed when smoothing is on).
        box: the shown box in frame pixels, with its score, or ``None`` for "no lesion".
        raw_probs: ``(K,)`` float32, the model's own output for this frame.
        raw_box: the model's own box for this frame (frame pixels), or ``None``.
        roi: the scan region the model saw, or ``None`` for the whole frame.
        forward_ms: the network forward alone, as the predictor timed it.
        predict_ms: ROI blanking and the whole predict call (preprocess, forward, post-process).
        queued_ms: how long the frame waited between capture and the start of inference.
        contours: outlines of the model's own lesion mask for this frame, in frame pixels (drawn with the
            shown box; not smoothed), empty without a mask.
    """

    frame: CapturedFrame
    class_names: tuple[str, ...]
    probs: np.ndarray
    box: Box | None
    raw_probs: np.ndarray
    raw_box: Box | None
    roi: ScanRegion | None
    forward_ms: float
    predict_ms: float
    queued_ms: float = 0.0
    contours: tuple[np.ndarray, ...] = ()

    @property
    def class_index(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def class_name(self) -> str:
        return self.class_names[self.class_index]

    @property
    def probability(self) -> float:
        return float(self.probs[self.class_index])

    def __repr__(self) -> str:
        return (
            f"FrameResult(index={self.frame.index}, class={self.class_name!r}, p={self.probability:.3f}, "
            f"box={self.box}, forward_ms={self.forward_ms:.1f})"
        )


@dataclass(frozen=True)
class OverlayFrame:
    """An overlaid frame ready for the sinks.

    ``image`` is ``(H, W, 3)`` uint8 BGR. ``result`` is ``None`` for the "signal lost" screens shown while a
    live source is away. ``latency_ms`` runs from capture to overlay ready. ``recording`` is what the
    recorder writes when it differs from ``image`` (the live views' image carries the status line, a
    recording only with ``record_status``); ``None``: ``image``.
    """

    image: np.ndarray
    result: FrameResult | None
    latency_ms: float
    state: SourceState
    recording: np.ndarray | None = None

    def record(self, video_id: str, raw: bool = False) -> FrameRecord | None:
        """This frame's :class:`~usvid.inference.records.FrameRecord` (None for a "signal lost" screen).

        Extra keys after the shared ones: with ``raw`` (smoothing on) the model's own ``raw_probs``,
        ``raw_box`` and ``raw_box_score``; then ``roi`` ``[x, y, w, h]`` and the timings in milliseconds.
        """
        r = self.result
        if r is None:
            return None
        extra: dict = {}
        if raw:
            extra = {
                "raw_probs": probs_dict(r.class_names, r.raw_probs),
                "raw_box": None if r.raw_box is None else r.raw_box.to_coco(2),
                "raw_box_score": None if r.raw_box is None else round(float(r.raw_box.score or 0.0), 6),
            }
        extra |= {
            "roi": None if r.roi is None else [r.roi.x, r.roi.y, r.roi.w, r.roi.h],
            "latency_ms": round(self.latency_ms, 3),
            "forward_ms": round(r.forward_ms, 3),
            "predict_ms": round(r.predict_ms, 3),
            "queued_ms": round(r.queued_ms, 3),
        }
        return FrameRecord(video_id, r.frame.index, r.frame.pts_seconds, r.class_names, r.probs, r.box, extra)


@dataclass(frozen=True)
class StreamEvent:
    """A change of the stream's state, e.g. ``signal_lost``, ``reconnected``, ``roi``, ``stopped``."""

    kind: str
    message: str
    wall_time: float = field(default_factory=time.time)

    def record(self) -> dict:
        return {"event": self.kind, "message": self.message, "wall_time": round(self.wall_time, 3)}
