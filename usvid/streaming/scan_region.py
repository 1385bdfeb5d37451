"""Which part of each frame the model sees: a fixed ``--roi`` or the scan region detected from the stream.

Detection is :class:`usvid.video.roi.RegionDetector`, the one ``usvid extract`` and ``usvid predict`` feed (so
the model sees frames cropped and blanked as in training): it needs a few seconds of frames, because the scan
is the part that changes. The tracker hands frames to a background thread that feeds the detector; inference
uses the whole frame until the region is known, so predictions start at once, but the overlay shows none of the
frame until then (it says "detecting scan region"; see :mod:`usvid.inference.overlay`). When detection
fails (a frozen image, say) it tries again on the next frames. When the frame size changes (a capture card switching
mode, a reconnection at another resolution) the region is detected again, and a fixed one re-checked.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import numpy as np

from usvid.errors import InputError
from usvid.video.roi import RegionConfig, RegionDetector, ScanRegion

log = logging.getLogger(__name__)


class ScanRegionTracker:
    """Call :meth:`update` with every frame that goes to the model; it returns the region to use.

    Args:
        config: the run's region settings: a fixed ``--roi`` (checked against every new frame size), else
            detection by :class:`~usvid.video.roi.RegionDetector` on ``config.frames`` frames per attempt
            (unless ``config.detect`` is off: the whole frame).
        on_change: called with the new region (``None`` = whole frame) and a reason.
    """

    def __init__(
        self,
        config: RegionConfig,
        on_change: Callable[[ScanRegion | None, str], None] | None = None,
    ) -> None:
        self.config = config
        self.on_change = on_change or (lambda region, why: None)
        self.region: ScanRegion | None = None
        self._size: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._detector: _DetectorThread | None = None

    def update(self, grey: np.ndarray, luma: np.ndarray | None = None) -> ScanRegion | None:
        """Offer one frame; return the region known now (``None`` while detecting).

        ``grey``: ``(H, W)`` uint8 frame; ``luma``: its decoded limited-range luma when the source is limited
        range (the detector reads that, as extraction does), else ``None``. Neither is modified; both are kept
        by reference until used.
        """
        size = (grey.shape[1], grey.shape[0])
        if size != self._size:
            self._new_size(size)
        if self._detector is not None:
            self._detector.offer(grey if luma is None else luma, luma is not None)
        with self._lock:
            return self.region

    def close(self) -> None:
        if self._detector is not None:
            self._detector.stop()
            self._detector = None

    def _new_size(self, size: tuple[int, int]) -> None:
        changed = self._size is not None
        self._size = size
        self.close()
        with self._lock:
            self.region = None
        detector = self.config.detector("stream")
        if self.config.roi is not None:
            try:
                region = self.config.fixed(*size)
            except InputError as err:
                raise InputError(
                    f"{err}{' (the frame size changed during the stream)' if changed else ''}"
                ) from None
            with self._lock:
                self.region = region
            self.on_change(region, "fixed --roi")
        elif detector is not None:
            if changed:
                log.info("frame size changed to %dx%d; detecting the scan region again", *size)
                self.on_change(None, "frame size changed, detecting again")
            self._detector = _DetectorThread(size, detector, self._found)

    def _found(self, size: tuple[int, int], region: ScanRegion) -> None:
        with self._lock:
            if size != self._size:
                return  # the frame size changed while detecting; another detector is at work
            self.region = region
        self.on_change(region, "detected")


class _DetectorThread:
    """Background thread feeding frames to a :class:`RegionDetector` until it finds a region (then it exits).

    A failed attempt (a frozen image, say) starts again on the next frames.
    """

    def __init__(self, size: tuple[int, int], detector: RegionDetector, found: Callable) -> None:
        self.size = size
        self.detector = detector
        self.found = found
        # Frames are only read here; a full queue just means detection samples fewer of them.
        self._queue: queue.Queue[tuple[np.ndarray, bool] | None] = queue.Queue(maxsize=4)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usvid-roi", daemon=True)
        self._thread.start()

    def offer(self, luma: np.ndarray, limited_range: bool) -> None:
        if not self._done.is_set():
            try:
                self._queue.put_nowait((luma, limited_range))
            except queue.Full:
                pass

    def stop(self) -> None:
        self._done.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def _run(self) -> None:
        warned = False
        while not self._done.is_set():
            item = self._queue.get()
            if item is None:
                return
            if not self.detector.add(*item):
                continue
            try:
                region = self.detector.region()
            except Exception as err:  # noqa: BLE001 - detection failing just means "whole frame for now"
                if not warned:
                    log.warning("%s; inferring on the whole frame and trying again", err)
                    warned = True
                self.detector.restart()
                continue
            self._done.set()
            self.found(self.size, region)


def model_input(grey: np.ndarray, region: ScanRegion | None) -> np.ndarray:
    """The frame to give the predictor with ``region``: blanked outside the scan, as ``usvid extract`` stores frames.

    ``grey`` ``(H, W)`` uint8 is copied only when the region blanks some of its pixels. The overlay blanks with
    the same region what the model did not see (the predictor's own blanking is then a no-op on the
    already-blanked crop).
    """
    if region is None or not region.blanks:
        return grey
    out = grey.copy()
    out[region.y : region.y + region.h, region.x : region.x + region.w] *= region.mask
    return out
