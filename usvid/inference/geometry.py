"""Frame geometry at inference: the same crop, letterbox and blanking that ``usvid extract`` applies to stored frames.

Networks are trained on the frame store, whose frames are the scan region cropped, letterboxed to ``S x S``
and blanked outside the scan where the region (:class:`usvid.video.roi.ScanRegion`) has a mask
(:class:`usvid.preprocess.ScanLetterbox`, the one definition extraction uses too). Inference calls that same
code, letterboxing to the store side ``S`` the model was trained from; :func:`usvid.preprocess.preprocess` then resizes ``S -> M`` as training did, so a
network never sees a stretched, uncropped or differently resampled frame; :func:`mask_to_content` undoes the
padding on the network's mask.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from usvid.data.store import Letterbox
from usvid.video.roi import ScanRegion, full_frame_region


def network_frames(frames: torch.Tensor, roi: ScanRegion | None, size: int) -> torch.Tensor:
    """Crop, letterbox and blank frames exactly as the frame store does (:class:`ScanLetterbox`).

    Args:
        frames: ``(B, C, H, W)`` uint8 on the CPU.
        roi: scan region in frame pixels, or ``None`` for the whole frame.
        size: the stored side ``S`` (:attr:`usvid.preprocess.PreprocessConfig.frame_size`).
    Returns:
        ``(B, C, S, S)`` uint8.
    """
    b, c, h, w = frames.shape
    box = (roi or full_frame_region(w, h)).letterbox(size)
    flat = frames.reshape(b * c, h, w).numpy()
    return torch.from_numpy(box.frames(flat)).reshape(b, c, size, size)


def mask_to_content(mask: np.ndarray, width: int, height: int, size: int) -> tuple[np.ndarray, float, float]:
    """Upsample a network mask to the letterboxed input and cut the padding off.

    Args:
        mask: ``(s, s)`` float32 in [0, 1] at network resolution (``s = size / mask_stride``, 32 by default).
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
