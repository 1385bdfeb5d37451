"""Run a model over frames of a split with THE shared preprocessing and collect what metrics need.

Used by per-epoch validation and by :func:`usvid.training.eval.evaluate_checkpoint`, so both score
exactly the same way. Localisation is scored on annotated frames that show a lesion: P is upsampled
(bilinear) to the network input size M, thresholded (``p >= mask_threshold``, 0.5 by default, the paper's)
and compared with the ground-truth mask (nearest-resized to M). Box JSI compares like with like: the union of
the bounding rectangles of every 8-connected region of the prediction against the same of the ground-truth
mask, both as pixel masks at M
(:func:`usvid.training.metrics.box_mask_jsi`). A box-annotated frame's mask is its filled boxes, so each true
box is its own region (touching or overlapping boxes merge into their enclosing rectangle); a frame with two
lesions is thus scored against both, not against one rectangle around both or the largest predicted region.

Optional flip test-time augmentation (``tta="flip"``) averages the softmax probabilities and the masks
(flipped back) of each image and its horizontal mirror.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from usvid.boxes import MASK_THRESHOLD, check_mask_threshold, lesion_pixels
from usvid.errors import unknown_name
from usvid.preprocess import PreprocessConfig, preprocess
from usvid.training import metrics
from usvid.training.frames import BatchReader

TTA_MODES = ("none", "flip")
Tta = Literal["none", "flip"]


@dataclass
class Predictions:
    """Per-frame outputs over ``indices`` (record indices of the split, in order).

    probs: ``(N, K)`` float32 softmax probabilities; labels: ``(N,)`` int64.
    jsi_mask / jsi_box: one value per scored (annotated, lesion-showing) frame.
    masks: P ``(S_n, S_n)`` float32 in [0, 1] for the record indices asked to be kept.
    """

    indices: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    video_ids: list[str]
    jsi_mask: list[float] = field(default_factory=list)
    jsi_box: list[float] = field(default_factory=list)
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return float((self.probs.argmax(1) == self.labels).mean()) if len(self.labels) else float("nan")

    def video_level(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Per video: ids, labels ``(V,)`` and the mean of its frames' probabilities ``(V, K)``."""
        order: dict[str, list[int]] = {}
        for row, vid in enumerate(self.video_ids):
            order.setdefault(vid, []).append(row)
        ids = list(order)
        labels = np.array([self.labels[order[v][0]] for v in ids], dtype=np.int64)
        probs = np.stack([self.probs[order[v]].mean(0) for v in ids]) if ids else np.zeros((0, self.probs.shape[1]))
        return ids, labels, probs


def score_localisation(prob: np.ndarray, truth: np.ndarray, input_size: int,
                       threshold: float = MASK_THRESHOLD) -> tuple[float | None, float | None]:
    """Mask JSI and box JSI (see the module docstring) of one frame; ``(None, None)`` without a true lesion.

    Args:
        prob: P ``(S_n, S_n)`` float in [0, 1].
        truth: ground truth ``(S, S)`` uint8 in {0, 255} (filled boxes for a box annotation).
        input_size: M, the network input size scoring happens at.
        threshold: lesion pixels are ``p >= threshold`` after upsampling (:func:`usvid.boxes.lesion_pixels`).
    """
    return score_thresholds(prob, truth, input_size, (threshold,))[0]


def score_thresholds(prob: np.ndarray, truth: np.ndarray, input_size: int,
                     thresholds: tuple[float, ...]) -> list[tuple[float | None, float | None]]:
    """:func:`score_localisation` at each of ``thresholds``, upsampling P and resizing the truth once."""
    gt = _resize_nearest(truth, input_size) > 127
    if not gt.any():
        return [(None, None)] * len(thresholds)
    up = F.interpolate(torch.from_numpy(prob)[None, None].float(), size=(input_size, input_size), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    out = []
    for t in thresholds:
        pred = lesion_pixels(up, t)
        out.append((metrics.mask_jsi(pred, gt), metrics.box_mask_jsi(pred, gt)))
    return out


def _resize_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def _forward(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool,
             tta: Tta) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax probabilities ``(B, K)`` float32 and mask ``(B, 1, S_n, S_n)`` float32 (or None) of ``x``."""
    views = [x, x.flip(-1)] if tta == "flip" else [x]
    probs, masks = [], []
    for i, view in enumerate(views):
        with torch.autocast(device_type=device.type, enabled=amp):
            out = model(view)
        probs.append(torch.softmax(out.logits.float(), dim=1))
        if out.mask is not None:
            mask = out.mask.float()
            masks.append(mask.flip(-1) if i == 1 else mask)  # back to the image's orientation
    prob = torch.stack(probs).mean(0)
    return prob, (torch.stack(masks).mean(0) if masks else None)


@torch.inference_mode()
def predict_frames(
    model: nn.Module,
    reader: BatchReader,
    indices: Sequence[int],
    preprocess_config: PreprocessConfig,
    device: torch.device,
    *,
    batch_size: int = 32,
    keep_masks: Sequence[int] = (),
    on_batch: Callable[[int, int], None] | None = None,
    tta: Tta = "none",
    mask_threshold: float = MASK_THRESHOLD,
) -> Predictions:
    """Class probabilities and localisation scores for ``indices`` of ``reader``'s split (model in eval mode).

    ``tta="flip"`` averages each frame's probabilities and mask with those of its horizontal mirror;
    ``mask_threshold`` is the lesion-pixel threshold the JSI scores use (see :func:`score_localisation`).
    """
    if tta not in TTA_MODES:
        raise unknown_name("test-time augmentation", str(tta), TTA_MODES)
    check_mask_threshold(mask_threshold)
    was_training = model.training
    model.eval()
    keep = set(keep_masks)
    records = reader.frames.records
    probs, jsi_mask, jsi_box, masks = [], [], [], {}
    amp = device.type == "cuda"
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        batch = reader.read(chunk)
        x = preprocess(batch.images.to(device, non_blocking=True), preprocess_config)
        prob, mask = _forward(model, x, device, amp, tta)
        probs.append(prob.cpu().numpy())
        if mask is not None:
            p = mask.cpu().numpy()[:, 0]
            for row, idx in enumerate(chunk):
                if idx in keep:
                    masks[idx] = p[row]
                if records[idx].annotated:
                    jm, jb = score_localisation(p[row], batch.masks[row, 0].numpy(), preprocess_config.size,
                                                mask_threshold)
                    if jm is not None:
                        jsi_mask.append(jm)
                    if jb is not None:
                        jsi_box.append(jb)
        if on_batch is not None:
            on_batch(min(start + batch_size, len(indices)), len(indices))
    model.train(was_training)
    k = len(reader.frames.class_names)
    return Predictions(
        indices=np.asarray(indices, dtype=np.int64),
        labels=np.array([records[i].label for i in indices], dtype=np.int64),
        probs=np.concatenate(probs) if probs else np.zeros((0, k), np.float32),
        video_ids=[records[i].video_id for i in indices],
        jsi_mask=jsi_mask,
        jsi_box=jsi_box,
        masks=masks,
    )
