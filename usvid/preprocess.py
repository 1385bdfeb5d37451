"""The one path from a decoded frame to network input, shared by extraction, training, evaluation and every predictor.

Two steps, each with one home here:

1. :class:`ScanLetterbox`: a decoded grey frame ``(H, W) uint8`` plus its scan region -> the stored frame
   ``(S, S) uint8`` (crop, letterbox, blank). ``usvid extract`` stores exactly this; predictors compute exactly
   this from the frames they are given.
2. :func:`preprocess`: stored frames ``(B, C, S, S) uint8`` -> network input ``(B, C, M, M)`` float32 (resize
   S -> M, scale, normalise). Training (before augmentation), evaluation and every predictor call it.

A checkpoint stores the :class:`PreprocessConfig` it was trained with, including the store side ``S`` it was
trained from, so a predictor repeats S -> M exactly as training did.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from usvid.data.store import Letterbox
from usvid.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessConfig:
    """Resize to ``size x size`` (bilinear), scale to [0, 1], then ``(x - mean) / std``.

    The paper feeds [0, 1] values (mean 0, std 1), which is the default.

    Attributes:
        size: the network's input side ``M``.
        store_size: the side ``S`` of the stored frames the network was trained on (the store's ``size``).
            A predictor letterboxes a frame to ``S``, then :func:`preprocess` resizes it to ``M``, the path
            training took. ``None`` (checkpoints and exports written before it was recorded): letterbox
            straight to ``M``, the behaviour of those versions (see :attr:`frame_size`).
    """

    size: int = 256
    mean: float = 0.0
    std: float = 1.0
    in_channels: int = 1
    store_size: int | None = None

    def __post_init__(self) -> None:
        if self.size <= 0 or self.size % 32:
            raise ConfigError(f"input size must be a positive multiple of 32 (the network's stride), got {self.size}")
        if self.std <= 0:
            raise ConfigError(f"std must be positive, got {self.std}")
        if self.store_size is not None and (not isinstance(self.store_size, int) or self.store_size <= 0):
            raise ConfigError(f"store size must be a positive whole number of pixels, got {self.store_size!r}")

    @property
    def frame_size(self) -> int:
        """The side ``S`` a predictor letterboxes frames to: the recorded store size, else ``size``."""
        return self.size if self.store_size is None else self.store_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(**data)


def preprocess(frames: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """Turn stored frames into network input.

    Args:
        frames: ``(B, C, H, W)`` uint8 (or float already in [0, 255]), any H, W.
    Returns:
        ``(B, C, size, size)`` float32, normalised.
    """
    if frames.ndim != 4:
        raise ConfigError(f"frames must be (B, C, H, W), got shape {tuple(frames.shape)}")
    x = frames.float() / 255.0
    if x.shape[-2:] != (config.size, config.size):
        x = F.interpolate(x, size=(config.size, config.size), mode="bilinear", align_corners=False, antialias=False)
    if config.mean != 0.0 or config.std != 1.0:
        x = (x - config.mean) / config.std
    return x


class ScanLetterbox:
    """Decoded grey frame + scan region -> stored ``(S, S)`` uint8 frame: crop, letterbox, then blank.

    The one definition of the frame a network sees; ``usvid extract`` stores it and every predictor computes it,
    so the two are bit-identical for the same decoded frame.

    Order: the crop is letterboxed (:class:`usvid.data.store.Letterbox`: box prefilter + bilinear), then every
    stored pixel whose resampling footprint reaches outside the scan mask is set to 0
    (:meth:`Letterbox.clean`). Blanking the source first and resizing after would look the same to the eye,
    but blends the black outside into a rim of half-dark pixels; blanking after resizing keeps each kept pixel
    computed from scan pixels only, leaves the rim exactly 0 (so limited-range expansion after resizing, as
    extraction does on raw luma, still maps it to 0) and is what every store written so far holds, so models
    already trained on those stores see their training pixels in deployment without re-extraction.

    Args:
        x, y, w, h: the scan region's box in frame pixels.
        mask: ``(h, w)`` uint8 in {0, 1}, 1 for scan pixels; ``None`` (or all ones) blanks nothing.
        size: the stored side ``S``.
    """

    def __init__(self, x: int, y: int, w: int, h: int, mask: np.ndarray | None, size: int) -> None:
        self.x, self.y, self.w, self.h = int(x), int(y), int(w), int(h)
        self.box = Letterbox(self.w, self.h, int(size))
        blanks = mask is not None and not bool(mask.all())
        #: ``(S, S)`` uint8 {0, 1}: stored pixels computed from scan pixels only; None when nothing is blanked.
        self.keep = self.box.clean(mask) if blanks else None

    @classmethod
    def of(cls, region, size: int) -> ScanLetterbox:
        """For a :class:`usvid.video.roi.ScanRegion` (``x, y, w, h`` and ``mask``); see :meth:`ScanRegion.letterbox`."""
        return cls(region.x, region.y, region.w, region.h, region.mask, size)

    @property
    def size(self) -> int:
        return self.box.size

    def into(self, grey: np.ndarray, out: np.ndarray) -> None:
        """One frame ``(H, W)`` uint8 (any strides) into ``out``, ``(S, S)`` uint8 whose padding is already 0."""
        self.box.frame_into(grey[self.y : self.y + self.h, self.x : self.x + self.w], out)
        if self.keep is not None:
            np.multiply(out, self.keep, out=out)

    def frames(self, grey: np.ndarray) -> np.ndarray:
        """``(T, H, W)`` uint8 -> ``(T, S, S)`` uint8."""
        out = np.zeros((grey.shape[0], self.size, self.size), np.uint8)
        for frame, slot in zip(grey, out):
            self.into(frame, slot)
        return out


_warned_store_size: set[str] = set()


def warn_if_store_size_unknown(config: PreprocessConfig, where: str) -> None:
    """Say once per model file that it does not record the store side it was trained from.

    Such a model (written before usvid recorded it) keeps the behaviour it had: frames are letterboxed
    straight to the network size, which matches training only when the store was extracted at that size.
    """
    if config.store_size is not None or where in _warned_store_size:
        return
    _warned_store_size.add(where)
    log.warning("%s: does not record the frame-store size it was trained from (written before usvid recorded "
                "it); frames are letterboxed straight to %d px, which matches training only if its store was "
                "extracted at --size %d; retrain or re-export with this usvid to record it", where, config.size,
                config.size)
