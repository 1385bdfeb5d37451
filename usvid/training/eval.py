"""``evaluate_checkpoint``: held-out metrics of a trained checkpoint on a split of a frame store.

Frame level: every frame (or ``frames_per_video`` evenly spaced per video, plus all annotated frames) is
preprocessed with THE shared :func:`usvid.preprocess.preprocess` and classified. Video level: a video's class is
the argmax of the mean of its frames' probabilities. Both levels report the positive class's sensitivity,
specificity, PPV, NPV (95% Wilson intervals) and AUC (95% DeLong interval), plus macro averages (see
:func:`usvid.training.metrics.classification_metrics`). Localisation as in the paper's section 3.3 (see
:mod:`usvid.training.predictions`). Writes ``report.json``, ``report.md`` and PNG plots into ``out`` (see
:mod:`usvid.training.report`). Grad-CAM explains each example frame's predicted class and is 0 on the letterbox
padding the store added around the scan (its geometry: the video's crop size and the store size).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from usvid import __version__
from usvid.boxes import Box, check_mask_threshold, deployed_threshold, largest_region_box, lesion_pixels
from usvid.checkpoint import Checkpoint, load_checkpoint
from usvid.data.store import Letterbox
from usvid.errors import ConfigError, InputError
from usvid.outputs import check_output_dir, check_path_text
from usvid.preprocess import preprocess
from usvid.training import metrics, report
from usvid.training.ddp import resolve_device
from usvid.training.frames import (
    BatchReader,
    SplitFrames,
    empty_split_advice,
    open_store,
    require_frames,
    split_frames,
    store_name,
)
from usvid.training.gradcam import grad_cam
from usvid.training.predictions import Predictions, Tta, predict_frames
from usvid.training.sampling import plan_eval

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """The report dict (as written to ``report.json``) and the files written."""

    report: dict[str, Any]
    files: dict[str, Path]


#: ``mask_threshold_source`` of a model without a lesion mask (``mask_threshold`` is then None).
NO_MASK = "none (the model has no lesion mask)"


def evaluate_checkpoint(
    checkpoint: str | Path | Checkpoint,
    store: Any,
    split: str = "test",
    out: str | Path = "eval",
    *,
    frames_per_video: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    num_examples: int = 8,
    progress: Callable[[int, int], None] | None = None,
    positive: str = metrics.DEFAULT_POSITIVE,
    tta: Tta = "none",
    mask_threshold: float | None = None,
) -> EvalResult:
    """Evaluate ``checkpoint`` on ``split`` of ``store`` and write the report into ``out``.

    Args:
        checkpoint: path of a ``best.pt``/``last.pt`` (or a loaded :class:`Checkpoint`).
        store: frame-store path (or an opened FrameStore).
        frames_per_video: cap per video (evenly spaced; annotated frames always kept); None = all frames.
        num_examples: frames shown in the overlay and Grad-CAM plots.
        progress: called with ``(frames done, frames total)``.
        positive: the class sensitivity, specificity, PPV, NPV and the positive AUC are about (one-vs-rest
            when there are more than two classes); it must be one of the checkpoint's classes.
        tta: ``"flip"`` averages probabilities and masks of each frame and its horizontal mirror.
        mask_threshold: lesion pixels are ``p >= mask_threshold`` of the upsampled P, for the JSI scores and
            the overlays; None: the checkpoint's own (chosen on its validation split by ``usvid train``, see
            :mod:`usvid.training.calibrate`), else the paper's 0.5: the number ``usvid predict`` / ``stream``
            use at deployment. Choose another on the validation split, never on test.
    """
    _check_options(batch_size, frames_per_video, num_examples)
    if mask_threshold is not None:
        check_mask_threshold(mask_threshold)
    inputs = [check_path_text(item, what) for item, what in ((checkpoint, "checkpoint"), (store, "frame store"))
              if isinstance(item, (str, Path))]
    out = check_output_dir(out, inputs=inputs, option="--out")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    store = open_store(store)
    _check_classes(ckpt, store, checkpoint)
    _check_positive(ckpt, positive, checkpoint)
    frames = split_frames(store, split, ckpt.class_names)
    if len(frames) == 0:
        raise InputError(empty_split_advice(store, split))
    require_frames(frames, store)
    dev = resolve_device(device)
    try:
        model = ckpt.build_model().to(dev)
    except InputError as err:
        raise InputError(f"{_name(checkpoint)}: {err}") from None
    has_mask = model.mask_branch is not None
    threshold_source = _threshold_source(mask_threshold, ckpt, has_mask)
    if mask_threshold is None:
        mask_threshold = deployed_threshold(ckpt.mask_threshold)
    reader = BatchReader(store, frames)
    indices = plan_eval(frames, frames_per_video)
    sample = _pick_examples(frames, indices, num_examples)
    preds = predict_frames(model, reader, indices, ckpt.preprocess, dev, batch_size=batch_size, keep_masks=sample,
                           on_batch=progress, tta=tta, mask_threshold=mask_threshold)
    _check_finite(preds, checkpoint)
    # Nothing is thresholded without a mask: the report names no threshold rather than one never applied.
    result = _report(ckpt, store, frames, preds, checkpoint, frames_per_video, positive, tta,
                     mask_threshold if has_mask else None, threshold_source)
    examples = _examples(model, reader, sample, preds, ckpt, dev, mask_threshold)
    figures = _plots(result, preds, examples)
    files = report.write_report(out, result, figures)
    log.info("wrote %s", files["report.json"])
    return EvalResult(report=result, files=files)


def _name(checkpoint: Any) -> str:
    return "checkpoint" if isinstance(checkpoint, Checkpoint) else str(checkpoint)


def _check_options(batch_size: int, frames_per_video: int | None, num_examples: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"--batch-size: frames per forward pass must be at least 1, got {batch_size}")
    if frames_per_video is not None and frames_per_video < 1:
        raise ConfigError(
            f"--frames-per-video must be at least 1 (leave it out for all frames), got {frames_per_video}")
    if num_examples < 0:
        raise ConfigError(f"--examples must be 0 or more, got {num_examples}")


def _check_finite(preds: Predictions, source: Any) -> None:
    """A report of NaN probabilities would look like a model that always says class 0."""
    bad = ~np.isfinite(preds.probs).all(axis=1)
    if bad.any():
        raise InputError(f"{_name(source)}: the network returned NaN or infinite probabilities for {int(bad.sum())} of "
                         f"{len(bad)} frames; the checkpoint is damaged, use another one")


def _check_classes(ckpt: Checkpoint, store: Any, source: Any) -> None:
    extra = sorted(set(map(str, store.labels)) - set(ckpt.class_names))
    if extra:
        raise InputError(
            f"{source}: checkpoint was trained for classes {ckpt.class_names}, but {store_name(store)} also has "
            f"{extra}; evaluate a checkpoint trained on this store's classes"
        )


def _check_positive(ckpt: Checkpoint, positive: str, source: Any) -> None:
    if positive not in ckpt.class_names:
        raise InputError(
            f"{source}: positive class '{positive}' is not one of the checkpoint's classes "
            f"{list(ckpt.class_names)}; pass one of them with --positive (positive=...)"
        )


def _threshold_source(given: float | None, ckpt: Checkpoint, has_mask: bool) -> str:
    """Where the report's mask threshold came from (``mask_threshold_source``)."""
    if not has_mask:
        return NO_MASK
    if given is not None:
        return "given"
    return "model (chosen on its val split)" if ckpt.mask_threshold is not None else "default (the paper's)"


def _report(ckpt: Checkpoint, store: Any, frames: SplitFrames, preds: Predictions, source: Any,
            frames_per_video: int | None, positive: str, tta: str, mask_threshold: float | None,
            threshold_source: str) -> dict[str, Any]:
    frame_level = metrics.classification_metrics(preds.labels, preds.probs, frames.class_names, positive)
    frame_level["jsi_mask"] = float(np.mean(preds.jsi_mask)) if preds.jsi_mask else None
    frame_level["jsi_box"] = float(np.mean(preds.jsi_box)) if preds.jsi_box else None
    frame_level["jsi_frames"] = len(preds.jsi_mask)
    video_ids, video_labels, video_probs = preds.video_level()
    return {
        "checkpoint": str(source if not isinstance(source, Checkpoint) else "<in memory>"),
        "store": store_name(store),
        "split": frames.name,
        "model": ckpt.model_config,
        "class_names": list(frames.class_names),
        "preprocess": ckpt.preprocess.to_dict(),
        "trained_epoch": ckpt.train_state.get("epoch"),
        "frames": len(preds.labels),
        "videos": len(video_ids),
        "frames_per_video": frames_per_video,
        "positive_class": positive,
        "operating_point": report.operating_rule(frames.class_names, positive),
        "gradcam_target": "each example frame's predicted class",
        "tta": tta,
        "mask_threshold": mask_threshold,
        "mask_threshold_source": threshold_source,
        "box_jsi_rule": "IoU of the unions of the bounding rectangles of every 8-connected region, prediction "
                        "vs ground truth, as pixel masks at the input size",
        "frame_level": frame_level,
        "video_level": metrics.classification_metrics(video_labels, video_probs, frames.class_names, positive),
        "usvid_version": __version__,
    }


def _pick_examples(frames: SplitFrames, indices: list[int], count: int) -> list[int]:
    """Annotated frames first (they show ground truth), spread over the split; then others."""
    annotated = [i for i in indices if frames.records[i].annotated]
    others = [i for i in indices if not frames.records[i].annotated]
    picks: list[int] = []
    for pool in (annotated, others):
        take = min(count - len(picks), len(pool))
        if take > 0:
            picks += [pool[p] for p in np.linspace(0, len(pool) - 1, num=take).round().astype(int)]
    return sorted(set(picks))


def _examples(model, reader: BatchReader, sample: list[int], preds: Predictions, ckpt: Checkpoint,
              dev: torch.device, mask_threshold: float) -> list[report.Example]:
    if not sample:
        return []
    size = ckpt.preprocess.size
    batch = reader.read(sample)
    records = [reader.frames.records[idx] for idx in sample]
    content = np.stack([content_mask(reader.store, rec.video_id, size) for rec in records])
    x = preprocess(batch.images.to(dev), ckpt.preprocess)
    row_of = {int(idx): row for row, idx in enumerate(preds.indices)}
    # The reported prediction (with TTA, if any) is the class explained, so the tile's caption names its target.
    predicted = torch.tensor([int(preds.probs[row_of[idx]].argmax()) for idx in sample])
    cams = grad_cam(model, x, predicted, valid=torch.from_numpy(content)).cpu().numpy()
    grey = F.interpolate(batch.images.float(), size=(size, size), mode="bilinear", align_corners=False)
    grey = grey[:, 0].round().clamp(0, 255).byte().numpy()
    names = reader.frames.class_names
    out = []
    for k, (idx, rec) in enumerate(zip(sample, records, strict=True)):
        probs = preds.probs[row_of[idx]]
        predicted = names[int(probs.argmax())]
        truth = _truth(batch.masks[k, 0].numpy(), size) if rec.annotated else None
        scale = size / batch.images.shape[-1]
        true_box = _scaled(rec.box, scale) if rec.annotated and rec.box is not None else None
        pred = _upsampled(preds.masks.get(idx), size, mask_threshold)
        out.append(report.Example(
            image=grey[k],
            caption=f"{rec.video_id}: true {names[rec.label]}, predicted {predicted} (P {probs.max():.2f})",
            truth=truth, true_box=true_box, pred=pred,
            pred_box=largest_region_box(pred) if pred is not None else None, cam=cams[k],
            content=content[k], cam_class=predicted,
        ))
    return out


def content_mask(store: Any, video_id: str, size: int) -> np.ndarray:
    """``(size, size)`` bool: True where a stored frame of ``video_id``, resized to ``size``, shows image.

    The store letterboxed each crop (:class:`usvid.data.store.Letterbox`: longer side scaled to the store size,
    centred, black padding); a network pixel is content when its centre falls inside the scaled crop.
    """
    video = next(v for v in store.videos if v.video_id == video_id)
    box = Letterbox(int(video.roi[2]), int(video.roi[3]), int(store.size))
    (nw, nh), (ox, oy) = box.scaled, box.offset
    centres = (np.arange(size) + 0.5) * store.size / size
    cols = (centres >= ox) & (centres < ox + nw)
    rows = (centres >= oy) & (centres < oy + nh)
    return rows[:, None] & cols[None, :]


def _truth(mask: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(mask)[None, None].float()
    return (F.interpolate(t, size=(size, size), mode="nearest")[0, 0] > 127).numpy()


def _upsampled(prob: np.ndarray | None, size: int, threshold: float) -> np.ndarray | None:
    if prob is None:
        return None
    up = F.interpolate(torch.from_numpy(prob)[None, None], size=(size, size), mode="bilinear", align_corners=False)
    return lesion_pixels(up[0, 0].numpy(), threshold)


def _scaled(box: Box, scale: float) -> Box:
    """A stored-pixel box in the pixels of the network input (``scale`` = input size / store size)."""
    return Box(box.x * scale, box.y * scale, box.w * scale, box.h * scale)


def _plots(result: dict, preds: Predictions, examples: list[report.Example]) -> dict[str, Any]:
    """The report's figures by file name (without ``.png``)."""
    _, video_labels, video_probs = preds.video_level()
    figures = {}
    for level, labels, probs in (("frame", preds.labels, preds.probs), ("video", video_labels, video_probs)):
        m = result[f"{level}_level"]
        curves, point = report.roc_curves(labels, probs, m)
        figures[f"roc_{level}"] = report.roc_plot(curves, point, f"ROC, {level} level ({len(labels)} {level}s)")
        figures[f"confusion_{level}"] = report.confusion_plot(
            m["confusion"], m["class_names"], f"confusion matrix, {level} level ({len(labels)} {level}s)")
    figures["examples"] = report.example_figure(examples, heatmap=False)
    figures["gradcam"] = report.example_figure(examples, heatmap=True)
    return figures
