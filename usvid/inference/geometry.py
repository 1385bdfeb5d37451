"""Frame geometry at inference: the same crop, letterbox and blanking that ``usvid extract`` applies to stored frames.

Networks are trained on the frame store, whose frames are the scan region cropped, letterboxed to ``S x S``
and blanked outside the scan where the region has a mask (:class:`usvid.preprocess.ScanLetterbox`, the one
definition extraction uses too). Inference calls that same code, letterboxing to the store side ``S`` the
model was trained from; :func:`usvid.preprocess.preprocess` then resizes ``S -> M`` as training did, so a
network never sees a stretched, uncropped or differently resampled frame; :func:`mask_to_content` undoes the
padding on the network's mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from usvid.data.store import Letterbox
from usvid.errors import ConfigError
from usvid.preprocess import ScanLetterbox


@dataclass(frozen=True)
class Roi:
    """A scan region in frame pixels: top-left corner ``(x, y)``, width ``w``, height ``h``.

    ``mask`` (optional, ``(h, w)`` uint8 in {0, 1}) marks the scan pixels inside the box; the others are
    blanked to 0 as extraction does (a sector's corners, markers beside its apex).
    """

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    # ScanLetterbox per stored side: its blanking mask costs more than letterboxing a frame, and a stream
    # predicts every frame with the same ROI.
    _letterboxes: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0 or self.w <= 0 or self.h <= 0:
            raise ConfigError(f"ROI needs x, y >= 0 and w, h > 0, got x={self.x} y={self.y} w={self.w} h={self.h}")
        if self.mask is not None and self.mask.shape != (self.h, self.w):
            raise ConfigError(f"ROI mask must be ({self.h}, {self.w}), got {self.mask.shape}")

    @classmethod
    def from_scan_region(cls, region) -> Roi:
        """From a :class:`usvid.video.roi.ScanRegion` (its blanking mask kept when it blanks anything)."""
        return cls(region.x, region.y, region.w, region.h, region.mask if region.blanks else None)

    def letterbox(self, size: int) -> ScanLetterbox:
        """The :class:`ScanLetterbox` of this ROI at stored side ``size`` (made once, then reused)."""
        box = self._letterboxes.get(size)
        if box is None:
            box = self._letterboxes[size] = ScanLetterbox.of(self, size)
        return box

    def check_inside(self, width: int, height: int) -> None:
        """Raise :class:`ConfigError` unless the ROI lies inside a ``width x height`` frame."""
        if self.x + self.w > width or self.y + self.h > height:
            raise ConfigError(
                f"ROI x={self.x} y={self.y} w={self.w} h={self.h} reaches outside the {width}x{height} frame; "
                "give a --roi inside the frame"
            )


def network_frames(frames: torch.Tensor, roi: Roi | None, size: int) -> torch.Tensor:
    """Crop, letterbox and blank frames exactly as the frame store does (:class:`ScanLetterbox`).

    Args:
        frames: ``(B, C, H, W)`` uint8 on the CPU.
        roi: scan region in frame pixels, or ``None`` for the whole frame.
        size: the stored side ``S`` (:attr:`usvid.preprocess.PreprocessConfig.frame_size`).
    Returns:
        ``(B, C, S, S)`` uint8.
    """
    b, c, h, w = frames.shape
    box = (roi or Roi(0, 0, w, h)).letterbox(size)
    flat = frames.reshape(b * c, h, w).numpy()
    return torch.from_numpy(box.frames(flat)).reshape(b, c, size, size)


def mask_to_content(mask: np.ndarray, width: int, height: int, size: int) -> tuple[np.ndarray, float, float]:
    """Upsample a network mask to the letterboxed input and cut the padding off.

    Args:
        mask: ``(s, s)`` float32 in [0, 1] at network resolution (``s = size / 32``).
        width, height: the region (ROI or whole frame) the network saw, in frame pixels.
        size: the network's input side ``S``.
    Returns:
        ``(content, sx, sy)``: the ``(nh, nw)`` float32 mask over the picture part of the ``S x S`` input
        (bilinear, as the paper upsamples to the input size), and the scale from region to content pixels
        (``content_x = region_x * sx``).
    """
    box = Letterbox(width, height, size)
    nw, nh = box.scaled
    ox, oy = box.offset
    square = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(square[oy:oy + nh, ox:ox + nw]), nw / width, nh / height
