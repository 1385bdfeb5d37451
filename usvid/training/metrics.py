"""Classification and localisation metrics (paper section 3.5), in numpy, no scikit-learn.

Classification: accuracy; sensitivity (recall), specificity, precision, F1 and one-vs-rest ROC AUC per
class, their macro averages and the confusion matrix (rows = truth, columns = prediction).
Localisation: the Jaccard similarity index (IoU) between the thresholded mask and the ground-truth mask,
and between boxes, where the predicted box is the minimum rectangle around the largest predicted region.
Undefined values (a class absent from the truth) are ``None`` so the JSON stays valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts; ``[i, j]`` = frames of class i predicted as j."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum statistic (ties count half); None without both classes."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s, p = np.asarray(scores)[order], positive[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(p)[distinct]
    fps = np.cumsum(~p)[distinct]
    tpr = np.r_[0.0, tps / max(int(p.sum()), 1)]
    fpr = np.r_[0.0, fps / max(int((~p).sum()), 1)]
    return fpr, tpr


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict:
    """All classification figures for ``labels`` ``(N,)`` int and ``probs`` ``(N, K)`` float in [0, 1]."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(labels, pred, k)
    per_class = {}
    for c, name in enumerate(class_names):
        tp = cm[c, c]
        fn = cm[c].sum() - tp
        fp = cm[:, c].sum() - tp
        tn = cm.sum() - tp - fn - fp
        sens, prec = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        per_class[name] = {
            "sensitivity": sens,
            "specificity": _ratio(tn, tn + fp),
            "precision": prec,
            "f1": f1,
            "auc": roc_auc(labels == c, probs[:, c]) if len(probs) else None,
            "support": int(cm[c].sum()),
        }
    macro = {key: _mean([v[key] for v in per_class.values()]) for key in ("sensitivity", "specificity", "precision", "auc")}
    return {
        "count": len(labels),
        "accuracy": _ratio(np.trace(cm), cm.sum()),
        "sensitivity": macro["sensitivity"],
        "specificity": macro["specificity"],
        "precision": macro["precision"],
        "f1_macro": _mean([v["f1"] for v in per_class.values()]),
        "auc": macro["auc"],
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def mask_jsi(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """IoU of two ``(H, W)`` bool masks; None when both are empty (undefined, not perfect)."""
    union = np.logical_or(pred, truth).sum()
    if union == 0:
        return None
    return float(np.logical_and(pred, truth).sum() / union)


def largest_region_box(mask: np.ndarray) -> Box | None:
    """``(x0, y0, x1, y1)`` (x1, y1 exclusive) of the largest 8-connected region of a bool mask, or None."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return (float(x), float(y), float(x + w), float(y + h))


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box of all set pixels of a bool mask (the ground-truth box of a mask annotation)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def box_jsi(pred: Box | None, truth: Box | None) -> float | None:
    """IoU of two boxes; a missing prediction against a real box scores 0; None without a true box."""
    if truth is None:
        return None
    if pred is None:
        return 0.0
    ix = max(0.0, min(pred[2], truth[2]) - max(pred[0], truth[0]))
    iy = max(0.0, min(pred[3], truth[3]) - max(pred[1], truth[1]))
    inter = ix * iy
    area = (pred[2] - pred[0]) * (pred[3] - pred[1]) + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter
    return float(inter / area) if area > 0 else None


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the two-sided 95% Student-t confidence interval (NaN: undefined for one value)."""
    vals = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(vals) == 0:
        return float("nan"), float("nan")
    if len(vals) == 1:
        return float(vals[0]), float("nan")
    sem = vals.std(ddof=1) / math.sqrt(len(vals))
    return float(vals.mean()), float(_t975(len(vals) - 1) * sem)


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (no SciPy dependency).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _t975(dof: int) -> float:
    return _T975[dof - 1] if dof <= len(_T975) else 1.96
