"""Lesion boxes and the lesion-pixel rule: the one home of both, for inference and evaluation alike.

A :class:`Box` is COCO ``[x, y, w, h]``: top-left corner and size in pixels of the image it was found in
(frame pixels for predictions; store pixels for annotations), floats, with an optional score in [0, 1].
``as_xyxy`` gives ``(x0, y0, x1, y1)`` with exclusive ends for the code that clips or intersects.

The lesion-pixel rule, :func:`lesion_pixels`, is ``p >= threshold``. Evaluation has always scored masks
with ``>=`` (the README's JSI figures were computed that way), so keeping it there and moving inference to
it changes no reported number; the two rules differ only on pixels at exactly the threshold.

A leaf module: numpy, OpenCV, the standard library and :mod:`usvid.errors` only, so every layer may import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from usvid.errors import ConfigError

__all__ = [
    "MASK_THRESHOLD", "Box", "box_iou", "check_mask_threshold", "deployed_threshold", "is_mask_threshold",
    "largest_region", "largest_region_box", "lesion_pixels",
]

#: Mask probability at or above which a pixel is lesion (paper section 3.3: "threshold 0.5").
MASK_THRESHOLD = 0.5


def check_mask_threshold(threshold: float) -> float:
    """``threshold`` itself, or a :class:`~usvid.errors.ConfigError` when it does not lie strictly in (0, 1)."""
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"mask threshold must lie strictly between 0 and 1, got {threshold}")
    return threshold


def is_mask_threshold(value: object) -> bool:
    """Whether a stored value (checkpoint entry, ONNX metadata) is a usable threshold: a number in (0, 1)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0.0 < value < 1.0


def deployed_threshold(stored: float | None) -> float:
    """The threshold a model is used at when none is given: its stored (val-chosen) one, else the paper's 0.5."""
    return MASK_THRESHOLD if stored is None else stored


def lesion_pixels(prob: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """Bool array of the lesion pixels of ``prob`` (any shape, float in [0, 1]): ``prob >= threshold``."""
    return np.asarray(prob) >= threshold


@dataclass(frozen=True)
class Box:
    """A box ``[x, y, w, h]`` in pixels (COCO order), with an optional ``score`` in [0, 1].

    Raises:
        ValueError: a value is not finite, or ``w`` or ``h`` is negative.
    """

    x: float
    y: float
    w: float
    h: float
    score: float | None = None

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.w, self.h)
        if not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in values):
            raise ValueError(f"box [x, y, w, h] must be finite numbers, got {list(values)}")
        if self.w < 0 or self.h < 0:
            raise ValueError(f"box width and height must be >= 0, got w={self.w}, h={self.h}; "
                             "give the size, not the far corner (see Box.from_xyxy)")
        if self.score is not None and not math.isfinite(self.score):
            raise ValueError(f"box score must be a finite number or None, got {self.score}")

    @classmethod
    def from_xyxy(cls, x0: float, y0: float, x1: float, y1: float, score: float | None = None) -> Box:
        """The box with corners ``(x0, y0)`` and ``(x1, y1)`` (exclusive ends)."""
        return cls(float(x0), float(y0), float(x1 - x0), float(y1 - y0), score)

    def as_xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    def to_coco(self, ndigits: int | None = None) -> list[float]:
        """``[x, y, w, h]`` as floats, rounded to ``ndigits`` decimals when given."""
        values = [float(self.x), float(self.y), float(self.w), float(self.h)]
        return values if ndigits is None else [round(v, ndigits) for v in values]

    @property
    def area(self) -> float:
        return float(self.w * self.h)

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when both are empty)."""
        return box_iou(self, other)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when the union is empty."""
    ax0, ay0, ax1, ay1 = a.as_xyxy()
    bx0, by0, bx1, by1 = b.as_xyxy()
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a.area + b.area - inter
    return float(inter / union) if union > 0 else 0.0


def largest_region(binary: np.ndarray) -> tuple[Box, np.ndarray] | None:
    """The largest 8-connected region of a ``(H, W)`` bool mask: its bounding box (whole pixels) and the
    ``(h, w)`` bool mask of the region's own pixels inside that box; None when no pixel is set."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(binary, np.uint8), connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return Box(float(x), float(y), float(w), float(h)), labels[y : y + h, x : x + w] == best


def largest_region_box(binary: np.ndarray) -> Box | None:
    """Bounding box of the largest 8-connected region of a ``(H, W)`` bool mask, or None when it is empty."""
    found = largest_region(binary)
    return None if found is None else found[0]
