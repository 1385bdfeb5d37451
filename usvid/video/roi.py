"""Scan-region detection: de-identification by cropping.

The ultrasound image is the part of the frame that changes over time; text (names, dates, IDs), rulers,
logos and markers are static, and strips (ECG, Doppler) are separate from it. Detection, on the first
frames of a video (grey ``(T, H, W)`` uint8):

1. temporal standard deviation of lightly blurred frames (blurring removes coding noise, keeps motion), at
   half resolution: ``cv2.pyrDown`` is the same 5x5 Gaussian the detection always used, sampled every
   other pixel, at a tenth of the cost of blurring at full size; steps 2-4 run on the half-size maps and
   the mask is scaled back up (edges to within 2 px, well inside the tolerance of the tests on real clips);
2. hysteresis: pixels above a low threshold, grouped into connected parts; the part holding most pixels
   above a high threshold is the moving *core* of the scan;
3. dim but non-black areas connected to the core (the grey pedestal of a dark sector, fluid) are added,
   after a morphological opening that cuts thin strokes (text, dotted lines) away;
4. closing, then bright static pixels (UI drawn over or beside the scan) are removed, then holes filled.

The result is a :class:`ScanRegion`: the bounding box of that mask (the crop) and the mask inside it;
:meth:`ScanRegion.apply` crops and sets every pixel outside the mask to 0, so text that sits inside the
box (a marker beside a sector's apex) is blanked too. ``--roi x,y,w,h`` replaces detection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from usvid.errors import InputError, ProcessingError

log = logging.getLogger(__name__)

ROI_FRAMES = 96  # frames (from the start) the detection looks at; about 3-4 s of a clinical clip
ROI_STRIDE = 1  # of those, every one: at half resolution all 96 cost less than 48 did at full size
_LOW_MIN = 1.0  # grey levels of temporal std; coding noise of H.264 static areas stays below
_HIGH_MIN = 2.0
_HIGH_FRAC = 0.1  # of the 99th percentile of the std map
_PEDESTAL = 1.5  # grey levels above the background that count as "not black"
_UI_LEVEL = 12  # static pixels this much brighter than the background are UI, not tissue
_MIN_AREA_FRAC = 0.02


@dataclass(frozen=True, eq=False)
class ScanRegion:
    """A crop box ``(x, y, w, h)`` in source pixels and which pixels of the crop are scan.

    Attributes:
        mask: ``(h, w)`` uint8 in {0, 1}; 0 marks pixels of the crop outside the scan (blanked).
        method: ``"auto"`` (detected), ``"fixed"`` (``--roi``) or ``"full"`` (whole frame, a still image).
    """

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray = field(repr=False)
    method: str = "auto"

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0 or self.x < 0 or self.y < 0:
            raise ValueError(f"invalid scan region {self.box}")
        if self.mask.shape != (self.h, self.w) or self.mask.dtype != np.uint8:
            raise ValueError(
                f"mask must be ({self.h}, {self.w}) uint8, got {self.mask.shape} {self.mask.dtype}"
            )

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def blanks(self) -> bool:
        return not bool(self.mask.all())

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Crop and blank: ``(..., H, W)`` uint8 -> ``(..., h, w)`` uint8 (a new array)."""
        crop = frames[..., self.y : self.y + self.h, self.x : self.x + self.w]
        return crop * self.mask if self.blanks else np.ascontiguousarray(crop)


def full_frame_region(width: int, height: int) -> ScanRegion:
    return ScanRegion(0, 0, width, height, np.ones((height, width), np.uint8), method="full")


def fixed_scan_region(
    box: tuple[int, int, int, int], width: int, height: int, where: str = "--roi"
) -> ScanRegion:
    """A user-given crop (``--roi x,y,w,h``), checked against the frame size; nothing is blanked."""
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise InputError(f"{where} {x},{y},{w},{h}: x and y must be >= 0, width and height > 0")
    if x + w > width or y + h > height:
        raise InputError(
            f"{where} {x},{y},{w},{h}: reaches ({x + w}, {y + h}), outside the {width}x{height} frame; "
            "give a box inside the frame"
        )
    return ScanRegion(x, y, w, h, np.ones((h, w), np.uint8), method="fixed")


def _ellipse(k: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    import cv2

    padded = np.pad(mask, 1)
    outside = (1 - padded).astype(np.uint8)
    cv2.floodFill(outside, np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8), (0, 0), 0)
    return (padded | outside)[1:-1, 1:-1]


class MotionStats:
    """Running per-pixel mean and standard deviation of blurred, half-size grey frames (one frame at a time).

    Only frames whose index is a multiple of ``stride`` are used; ``seen`` counts all frames offered.
    """

    def __init__(self, stride: int = ROI_STRIDE) -> None:
        self.stride, self.count, self.seen = stride, 0, 0
        self.limited_range = False
        self.frame_shape: tuple[int, int] | None = None
        self._sum: np.ndarray | None = None
        self._sq: np.ndarray | None = None

    def update(self, frames: np.ndarray, limited_range: bool = False) -> None:
        """Add ``(T, H, W)`` uint8 grey frames (consecutive, continuing the previous call).

        ``limited_range``: the frames are limited-range luma (16..235); the statistics are converted to full
        range once, in :meth:`mean_std`, instead of expanding every frame.
        """
        import cv2

        start = (-self.seen) % self.stride
        self.seen += len(frames)
        if self.count and limited_range != self.limited_range:
            raise ValueError("cannot mix limited- and full-range frames in one MotionStats")
        self.limited_range = limited_range
        for frame in frames[start :: self.stride]:
            small = cv2.pyrDown(frame)  # 5x5 Gaussian + every other pixel; uint8: accumulate converts
            if self._sum is None:
                self.frame_shape = frame.shape
                self._sum, self._sq = np.zeros(small.shape, np.float32), np.zeros(small.shape, np.float32)
            cv2.accumulate(small, self._sum)
            cv2.accumulateSquare(small, self._sq)
            self.count += 1

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ceil(H / 2), ceil(W / 2))`` float32 temporal mean and standard deviation (full-range grey levels)."""
        mean = self._sum / self.count
        std = np.sqrt(np.maximum(self._sq / self.count - mean * mean, 0.0))
        if self.limited_range:
            gain = 255.0 / 219.0
            mean, std = np.clip((mean - 16.0) * gain, 0.0, 255.0), std * gain
        return mean, std


def region_from_stats(stats: MotionStats, source: str = "video") -> ScanRegion:
    """The scan region from accumulated statistics; see the module docstring for the steps."""
    import cv2

    if stats.count < 2:
        raise ValueError("need at least two frames")
    mean, std = stats.mean_std()
    height, width = stats.frame_shape
    p1, p99 = np.percentile(std, [1, 99])  # one partition pass for both
    high = max(_HIGH_MIN, _HIGH_FRAC * float(p99))
    # JPEG-coded frame folders have no truly static pixel; their noise floor sets the low threshold.
    low = max(_LOW_MIN, float(p1))
    weak = cv2.morphologyEx((std > low).astype(np.uint8), cv2.MORPH_OPEN, _ellipse(3))
    n, labels, _, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    strong = np.bincount(labels[std > high].ravel(), minlength=n)
    strong[0] = 0
    if n < 2 or strong.max() == 0:
        raise ProcessingError(
            f"{source}: no moving scan region found in the first {stats.count} frames; pass --roi x,y,w,h"
        )
    mask = (labels == int(np.argmax(strong))).astype(np.uint8)

    border = np.concatenate([mean[0], mean[-1], mean[:, 0], mean[:, -1]])
    background = float(np.median(border))
    ui = (std < low) & (mean > background + _UI_LEVEL)
    pedestal = cv2.morphologyEx(
        ((mean > background + _PEDESTAL) & ~ui).astype(np.uint8), cv2.MORPH_OPEN, _ellipse(5)
    )
    n2, labels2, stats2, _ = cv2.connectedComponentsWithStats(pedestal, connectivity=8)
    overlap = np.bincount(labels2[mask > 0].ravel(), minlength=n2)
    overlap[0] = 0
    for part in np.nonzero(overlap > 0.2 * stats2[:, cv2.CC_STAT_AREA])[0]:
        mask |= (labels2 == part).astype(np.uint8)

    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(5))
    mask &= 1 - ui.astype(np.uint8)  # no dilation: a half-size pixel already spans 2 source pixels
    # Back to full size: source pixel (x, y) was sampled into half-size pixel (x // 2, y // 2).
    mask = _fill_holes(mask).repeat(2, axis=0).repeat(2, axis=1)[:height, :width]
    x, y, w, h = cv2.boundingRect(mask)
    if w * h < _MIN_AREA_FRAC * width * height:
        raise ProcessingError(
            f"{source}: the moving region found ({w}x{h} px) is too small to be the scan; pass --roi x,y,w,h"
        )
    return ScanRegion(x, y, w, h, np.ascontiguousarray(mask[y : y + h, x : x + w]), method="auto")


def detect_scan_region(frames: np.ndarray, source: str = "video") -> ScanRegion:
    """Detect the scan region of ``(T, H, W)`` uint8 grey frames (``T >= 2``; one frame -> whole frame)."""
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W) uint8, got {frames.shape} {frames.dtype}")
    if frames.shape[0] < 2:
        return full_frame_region(frames.shape[2], frames.shape[1])
    stats = MotionStats()
    stats.update(frames)
    return region_from_stats(stats, source)


def scan_region_of(path, backend: str = "auto", roi_frames: int = ROI_FRAMES) -> ScanRegion:
    """Detect the scan region of a video file or frame folder from its first ``roi_frames`` frames.

    The same statistics as ``usvid extract`` (limited-range luma where the source has it); one batch in memory.
    """
    from usvid.video.reader import open_video

    stats = MotionStats()
    with open_video(path, backend) as reader:
        for batch in reader.batches(32, grey=True, raw_luma=True):
            stats.update(batch.data[:, 0].numpy(), limited_range=batch.limited_range)
            if stats.seen >= roi_frames:
                break
        width, height = reader.info.width, reader.info.height
    if stats.seen < 2:
        return full_frame_region(width, height)
    if stats.count < 2:
        raise ProcessingError(f"{path}: too few frames to detect the scan region; pass --roi x,y,w,h")
    return region_from_stats(stats, source=str(path))
