"""The lesion-pixel threshold a model is deployed with, chosen on its validation split.

The paper scores ``P >= 0.5`` after upsampling. How far a trained P spreads past a lesion's edge depends on
the mask grid and the training run, so 0.5 is rarely the best operating point: on the BUSI + BUS-BRA study the
threshold with the best validation mask JSI was 0.55 to 0.7, and it lifted the test mask JSI by up to 0.17
(``benchmarks/results/mask_threshold_sweep*.md``). ``usvid train`` therefore ends by scoring the saved model's
mask JSI on the validation split at every threshold of :data:`THRESHOLDS` and stores the best one in
``best.pt`` (:attr:`usvid.checkpoint.Checkpoint.mask_threshold`); export copies it into the ONNX metadata and
``usvid predict``, ``stream`` and ``eval`` use it unless ``--threshold`` says otherwise. The test split never
takes part.

Scoring is :func:`usvid.training.predictions.score_thresholds`, the function evaluation scores with, so the
validation figure at 0.5 is exactly ``usvid eval``'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usvid.boxes import MASK_THRESHOLD
from usvid.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from usvid.errors import ConfigError, InputError
from usvid.training.config import refuse_test_split
from usvid.training.frames import BatchReader, open_store, split_frames
from usvid.training.predictions import predict_frames, score_thresholds

#: The thresholds tried, 0.5 among them.
THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
#: Fewer annotated lesion frames than this on the validation split: too few to choose on; 0.5 stays.
MIN_FRAMES = 20


@dataclass(frozen=True)
class ThresholdChoice:
    """The outcome of :func:`choose_mask_threshold`.

    Attributes:
        threshold: the chosen threshold; ``None`` when there was too little to choose on (see ``reason``).
        split: the split it was chosen on.
        frames: annotated lesion frames scored.
        jsi_mask: mean mask JSI per threshold (``{"0.5": ...}``); empty when nothing was scored.
        jsi_box: mean box JSI per threshold, the same keys.
        reason: why no threshold was chosen; empty when one was.
    """

    threshold: float | None
    split: str
    frames: int
    jsi_mask: dict[str, float] = field(default_factory=dict)
    jsi_box: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "split": self.split, "frames": self.frames,
                "jsi_mask": self.jsi_mask, "jsi_box": self.jsi_box, "reason": self.reason,
                "rule": "P upsampled bilinearly to the input, lesion pixels p >= threshold; the threshold with "
                        "the best mean mask JSI on this split (ties: the one nearest 0.5)"}


def describe_choice(choice: ThresholdChoice) -> str:
    """One line for the user: the chosen threshold and what it did on the split, or why none was chosen."""
    if choice.threshold is None:
        return f"{MASK_THRESHOLD:g} ({choice.reason})"
    at = choice.jsi_mask[f"{choice.threshold:g}"]
    base = choice.jsi_mask.get(f"{MASK_THRESHOLD:g}")
    versus = f" vs {base:.3f} at {MASK_THRESHOLD:g}" if base is not None else ""
    return (f"{choice.threshold:g}, chosen on '{choice.split}' ({choice.frames} lesion frames: mask JSI {at:.3f}"
            f"{versus}); predict, stream and eval use it unless --threshold is given")


def jsi_by_threshold(model: torch.nn.Module, checkpoint: Checkpoint, store: Any, split: str,
                     thresholds: tuple[float, ...] = THRESHOLDS, device: torch.device = torch.device("cpu"),
                     batch_size: int = 32) -> tuple[dict[str, dict[str, float]], int]:
    """Mean mask and box JSI over the annotated lesion frames of ``split`` at each threshold.

    Returns:
        ``({f"{t:g}": {"jsi_mask", "jsi_box"}}, frames scored)``; the dict is empty when no frame was scored.
    """
    frames = split_frames(store, split, checkpoint.class_names)
    reader = BatchReader(store, frames)
    annotated = frames.annotated_indices
    if not annotated:
        return {}, 0
    preds = predict_frames(model, reader, annotated, checkpoint.preprocess, device, batch_size=batch_size,
                           keep_masks=annotated)
    size = checkpoint.preprocess.size
    # One row per frame with a true lesion, one column per threshold: P is upsampled once per frame.
    rows = [row for row in (score_thresholds(preds.masks[i], reader.mask(frames.records[i], store.size), size,
                                             thresholds) for i in annotated) if row[0][0] is not None]
    out: dict[str, dict[str, float]] = {}
    if rows:
        for j, t in enumerate(thresholds):
            out[f"{t:g}"] = {"jsi_mask": float(np.mean([row[j][0] for row in rows])),
                             "jsi_box": float(np.mean([row[j][1] for row in rows]))}
    scored = len(rows)
    return out, scored


def choose_mask_threshold(model: torch.nn.Module, checkpoint: Checkpoint, store: Any, split: str = "val", *,
                          thresholds: tuple[float, ...] = THRESHOLDS, device: torch.device = torch.device("cpu"),
                          min_frames: int | None = None) -> ThresholdChoice:
    """The threshold of ``thresholds`` with the best mean mask JSI on ``split`` (see the module docstring).

    ``model`` is ``checkpoint``'s network, built and in eval mode on ``device``. Never pass a test split.
    ``min_frames``: fewest annotated lesion frames to choose on (default :data:`MIN_FRAMES`).
    """
    min_frames = MIN_FRAMES if min_frames is None else min_frames
    if getattr(model, "mask_branch", None) is None:
        return ThresholdChoice(None, split, 0, reason="the model has no lesion mask")
    scores, frames = jsi_by_threshold(model, checkpoint, store, split, thresholds, device)
    jsi_mask = {t: s["jsi_mask"] for t, s in scores.items()}
    jsi_box = {t: s["jsi_box"] for t, s in scores.items()}
    if frames < min_frames:
        return ThresholdChoice(None, split, frames, jsi_mask, jsi_box,
                               reason=f"only {frames} annotated lesion frames in the '{split}' split (at least "
                                      f"{min_frames} are needed to choose); {MASK_THRESHOLD:g} stays")
    best = max(jsi_mask, key=lambda t: (round(jsi_mask[t], 9), -abs(float(t) - MASK_THRESHOLD)))
    return ThresholdChoice(float(best), split, frames, jsi_mask, jsi_box)


def calibrate_checkpoint(path: str | Path, store: Any, split: str = "val", *, out: str | Path | None = None,
                         device: str | torch.device = "cpu") -> ThresholdChoice:
    """Choose the threshold of checkpoint ``path`` on ``split`` of ``store`` and write the checkpoint with it
    to ``out`` (default: ``path`` itself, replaced atomically); nothing is written when none was chosen.

    Raises:
        ConfigError: ``split`` is the test split.
    """
    refuse_test_split("split", split, "the mask threshold", "pass the store's val split")
    target = _target(path, out)
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    ckpt = load_checkpoint(path)
    store = open_store(store)
    model = ckpt.build_model().to(dev)
    choice = choose_mask_threshold(model, ckpt, store, split, device=dev)
    if choice.threshold is not None:
        save_checkpoint(target, dataclasses.replace(ckpt, mask_threshold=choice.threshold))
    return choice


def _target(path: str | Path, out: str | Path | None) -> Path:
    """Where the calibrated checkpoint goes: ``out``, or ``path`` itself when it is a checkpoint file (a shipped
    model's name is installed package data: it needs ``out``). An existing ``out`` must be a usvid checkpoint."""
    if out is None:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: not a checkpoint file here (a shipped model?); give --out FILE for the "
                              "calibrated copy")
        return Path(path)
    out = Path(out)
    if out.exists():
        try:
            load_checkpoint(out)
        except InputError:
            raise InputError(f"{out}: exists and is not a usvid checkpoint; usvid will not replace it, choose "
                             "another --out") from None
    return out
