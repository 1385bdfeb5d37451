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

from usvid.errors import ConfigError, InputError, ProcessingError

log = logging.getLogger(__name__)

ROI_FRAMES = 96  # frames (from the start) the detection looks at; about 3-4 s of a clinical clip
ROI_STRIDE = 1  # of those, every one: at half resolution all 96 cost less than 48 did at full size
_LOW_MIN = 1.0  # grey levels of temporal std; coding noise of H.264 static areas stays below
_HIGH_MIN = 2.0
_HIGH_FRAC = 0.1  # of the 99th percentile of the std map
_PEDESTAL = 1.5  # grey levels above the background that count as "not black"
_UI_LEVEL = 12  # static pixels this much brighter than the background are UI, not tissue
_MIN_AREA_FRAC = 0.02


@dataclass(frozen=True)
class ScanRegion:
    """The part of a frame a network sees: a crop box ``(x, y, w, h)`` in frame pixels and which pixels of it are scan.

    The one region type of usvid: extraction crops stored frames with it, predictors letterbox to it, boxes are
    mapped back through it and overlays blank outside it. Two regions are equal when their boxes are.

    Attributes:
        mask: ``(h, w)`` uint8 in {0, 1}, 0 for pixels of the crop outside the scan (blanked); ``None`` blanks
            nothing (a ``--roi`` box, the whole frame).
        method: ``"auto"`` (detected), ``"fixed"`` (``--roi``) or ``"full"`` (the whole frame).
    """

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    method: str = field(default="auto", compare=False)
    # ScanLetterbox per stored side: its blanking mask costs more than letterboxing a frame, and a stream
    # letterboxes every frame to the same region.
    _letterboxes: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0 or self.x < 0 or self.y < 0:
            raise ConfigError(
                f"scan region (ROI) x={self.x} y={self.y} w={self.w} h={self.h}: needs x, y >= 0 and w, h > 0"
            )
        if self.mask is not None and (self.mask.shape != (self.h, self.w) or self.mask.dtype != np.uint8):
            raise ConfigError(
                f"scan region mask must be ({self.h}, {self.w}) uint8, got {self.mask.shape} {self.mask.dtype}"
            )

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def blanks(self) -> bool:
        return self.mask is not None and not bool(self.mask.all())

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Crop and blank: ``(..., H, W)`` uint8 -> ``(..., h, w)`` uint8 (a new array)."""
        crop = frames[..., self.y : self.y + self.h, self.x : self.x + self.w]
        return crop * self.mask if self.blanks else np.ascontiguousarray(crop)

    def letterbox(self, size: int):
        """The :class:`usvid.preprocess.ScanLetterbox` of this region at stored side ``size`` (made once, then reused)."""
        box = self._letterboxes.get(size)
        if box is None:
            from usvid.preprocess import ScanLetterbox

            box = self._letterboxes[size] = ScanLetterbox.of(self, size)
        return box

    def check_inside(self, width: int, height: int, where: str = "--roi") -> None:
        """Raise :class:`ConfigError` (an :class:`InputError`) unless the region lies inside a ``width x height`` frame."""
        if self.x + self.w > width or self.y + self.h > height:
            raise ConfigError(
                f"{where} {self.x},{self.y},{self.w},{self.h}: reaches ({self.x + self.w}, {self.y + self.h}), "
                f"outside the {width}x{height} frame; give a box inside the frame"
            )


def full_frame_region(width: int, height: int) -> ScanRegion:
    return ScanRegion(0, 0, width, height, method="full")


def fixed_scan_region(
    box: tuple[int, int, int, int], width: int, height: int, where: str = "--roi"
) -> ScanRegion:
    """A user-given crop (``--roi x,y,w,h``), checked against the frame size; nothing is blanked."""
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise InputError(f"{where} {x},{y},{w},{h}: x and y must be >= 0, width and height > 0")
    region = ScanRegion(x, y, w, h, method="fixed")
    region.check_inside(width, height, where)
    return region


@dataclass(frozen=True)
class RegionConfig:
    """Which part of each frame the network sees; the one region setting of ``extract``, ``predict`` and ``stream``.

    Attributes:
        roi: fixed scan region ``(x, y, w, h)`` in source pixels (``--roi``); ``None`` detects it.
        detect: when ``roi`` is ``None``, detect the scan region (``False``, ``--full-frame``: the whole frame).
        frames: how many first frames the detector looks at (:class:`RegionDetector`; a stream, per attempt).
    """

    roi: tuple[int, int, int, int] | None = None
    detect: bool = True
    frames: int = ROI_FRAMES

    def __post_init__(self) -> None:
        if self.roi is not None:
            object.__setattr__(self, "roi", _checked_roi(tuple(self.roi)))
        if not isinstance(self.frames, int) or self.frames < 2:
            raise ConfigError(
                f"roi_frames {self.frames}: must be a whole number >= 2 (detection looks for changing pixels); "
                f"the default is {ROI_FRAMES}"
            )

    def fixed(self, width: int, height: int, where: str = "--roi") -> ScanRegion | None:
        """The ``--roi`` region checked against a ``width x height`` frame, or ``None`` when there is none."""
        return None if self.roi is None else fixed_scan_region(self.roi, width, height, where)

    @property
    def detects(self) -> bool:
        """Whether the region is detected (no ``--roi``, not ``--full-frame``)."""
        return self.roi is None and self.detect

    def detector(self, source: str = "video") -> RegionDetector | None:
        """A fresh detector when this config :attr:`detects`, else ``None``."""
        return RegionDetector(self.frames, source) if self.detects else None

    def to_flat(self) -> dict:
        """The keys the commands have always written (``predict_config.json``, store fingerprints)."""
        return {"roi": list(self.roi) if self.roi else None, "detect_roi": self.detect, "roi_frames": self.frames}


def _checked_roi(roi: tuple) -> tuple[int, int, int, int]:
    """A ``--roi`` by its own rule, before any frame is seen (its fit to a frame is checked per frame size)."""
    from usvid.video.reader import MAX_FRAME_SIDE

    text = ",".join(map(str, roi))
    if len(roi) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in roi):
        raise ConfigError(f"--roi {text}: expected four whole numbers x,y,w,h such as 40,60,560,400")
    x, y, w, h = (int(v) for v in roi)
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ConfigError(f"--roi {text}: x and y must be >= 0, width and height > 0, such as 40,60,560,400")
    if x + w > MAX_FRAME_SIDE or y + h > MAX_FRAME_SIDE:
        raise ConfigError(f"--roi {text}: reaches past {MAX_FRAME_SIDE} pixels, larger than any video usvid reads")
    return (x, y, w, h)


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


class RegionDetector:
    """The one scan-region detector driver: feed it a video's first frames, then ask for its region.

    ``extract``, ``predict`` and ``stream`` all feed one of these: it accumulates :class:`MotionStats` over
    exactly the first ``frames`` frames offered (later ones are ignored), in the range they come in
    (limited-range luma is converted once, in the statistics), and decides the region from them.

    Args:
        frames: frames to look at; :attr:`ready` once that many were offered.
        source: names the video in errors.
    """

    def __init__(self, frames: int = ROI_FRAMES, source: str = "video") -> None:
        self.frames, self.source = frames, source
        self.stats = MotionStats()

    @property
    def ready(self) -> bool:
        return self.stats.seen >= self.frames

    def add(self, frames: np.ndarray, limited_range: bool = False) -> bool:
        """Offer ``(T, H, W)`` or one ``(H, W)`` uint8 grey frame(s), consecutive; returns :attr:`ready`."""
        if frames.ndim == 2:
            frames = frames[None]
        wanted = self.frames - self.stats.seen
        if wanted > 0:
            self.stats.update(frames[:wanted], limited_range=limited_range)
        return self.ready

    def region(self) -> ScanRegion:
        """The region of the frames offered so far; one frame (a still image) is the whole frame.

        Raises:
            ProcessingError: no frame was offered, or no moving scan region is found in them.
        """
        stats = self.stats
        if stats.seen == 0:
            raise ProcessingError(f"{self.source}: no frame could be decoded; the file is corrupt")
        if stats.count < 2:
            if stats.seen >= 2:  # only with a stride > 1
                raise ProcessingError(f"{self.source}: too few frames to detect the scan region; pass --roi x,y,w,h")
            height, width = stats.frame_shape
            return full_frame_region(width, height)
        return region_from_stats(stats, self.source)

    def restart(self) -> None:
        """Forget the frames seen (a stream tries again on the next frames)."""
        self.stats = MotionStats(self.stats.stride)


def detect_scan_region(frames: np.ndarray, source: str = "video") -> ScanRegion:
    """Detect the scan region of ``(T, H, W)`` uint8 grey frames (``T >= 1``; one frame -> whole frame)."""
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W) uint8, got {frames.shape} {frames.dtype}")
    detector = RegionDetector(len(frames), source)
    detector.add(frames)
    return detector.region()


def scan_region_of(path, backend: str = "auto", roi_frames: int = ROI_FRAMES) -> ScanRegion:
    """Detect the scan region of a video file or frame folder from its first ``roi_frames`` frames.

    The frames and statistics ``usvid extract`` uses (limited-range luma where the source has it).
    """
    from usvid.video.reader import open_video

    detector = RegionDetector(roi_frames, str(path))
    with open_video(path, backend) as reader:
        for batch in reader.batches(32, grey=True, raw_luma=True):
            if detector.add(batch.data[:, 0].numpy(), limited_range=batch.limited_range):
                break
    return detector.region()
