"""Classification and localisation metrics (paper section 3.5), in numpy, no scikit-learn.

Classification, for a chosen positive class (``malignant`` by default; one-vs-rest when K > 2): sensitivity
(TPR), specificity (TNR), PPV and NPV of that class, each with a 95% Wilson score interval, accuracy (Wilson
interval too) and the positive class's ROC AUC with a 95% DeLong interval. Macro averages over the classes go
under names that say so (``sensitivity_macro``, ``f1_macro``, ...); per-class figures and the confusion
matrix (rows = truth, columns = prediction, in ``class_names`` order) come with them.
Localisation: the Jaccard similarity index (IoU) between the thresholded mask and the ground-truth mask,
and between box masks: the union of the bounding rectangles of every connected region, on both sides
(see :func:`box_mask`).
Undefined values (a class absent from the truth) are ``None`` so the JSON stays valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from usvid.boxes import Box
from usvid.errors import InputError

#: The positive class when none is named and the classes include it.
DEFAULT_POSITIVE = "malignant"
#: Two-sided 95% standard-normal quantile.
Z95 = 1.959963984540054
CI_METHOD = {
    "proportions": "Wilson score interval, 95% (sensitivity, specificity, ppv, npv, accuracy)",
    "auc": "DeLong, 95%, normal approximation clipped to [0, 1] (auc_positive)",
    "note": "frame-level intervals treat frames as independent; frames of one video are not, so they are "
            "optimistic (too narrow); video-level intervals count each video once",
}


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


def wilson_ci(successes: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval ``(lo, hi)`` of the proportion ``successes / total``; None when ``total`` is 0.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is not degenerate at 0/n or n/n.
    """
    if total <= 0:
        return None
    p, n = successes / total, total
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0
    return ranks


def delong_ci(positive: np.ndarray, scores: np.ndarray, z: float = Z95) -> tuple[float, float] | None:
    """DeLong (1988) interval ``(lo, hi)`` of the ROC AUC (normal approximation, clipped to [0, 1]).

    The variance is ``var(V10) / m + var(V01) / n`` over the m positives' and n negatives' structural
    components (each positive's share of negatives scored below it, ties half, and vice versa), computed
    with midranks as in Sun & Xu (2014). None without two positives and two negatives.
    """
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return None
    all_ranks = _midranks(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - _midranks(pos)) / n  # per positive: negatives below it
    v01 = 1.0 - (all_ranks[m:] - _midranks(neg)) / m  # per negative: positives above it
    auc = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return (max(0.0, auc - z * se), min(1.0, auc + z * se))


def resolve_positive(class_names: Sequence[str], positive: str | None) -> int | None:
    """Index of the positive class: ``positive``, else :data:`DEFAULT_POSITIVE` when present, else None.

    Raises:
        InputError: ``positive`` is named but is not one of ``class_names``.
    """
    names = list(class_names)
    if positive is None:
        return names.index(DEFAULT_POSITIVE) if DEFAULT_POSITIVE in names else None
    if positive not in names:
        raise InputError(
            f"positive class '{positive}' is not one of the classes {names}; pass one of them as the positive "
            f"class (usvid eval --positive NAME)"
        )
    return names.index(positive)


def _ci(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


def one_vs_rest_counts(cm: np.ndarray, c: int) -> tuple[int, int, int, int]:
    """One-vs-rest ``(tp, fn, fp, tn)`` of class ``c`` in ``cm`` ``(K, K)`` (rows true, columns predicted)."""
    tp = int(cm[c, c])
    fn = int(cm[c].sum()) - tp
    fp = int(cm[:, c].sum()) - tp
    return tp, fn, fp, int(cm.sum()) - tp - fn - fp


def binary_metrics(tp: int, fn: int, fp: int, tn: int) -> dict[str, float | list[float] | None]:
    """Sensitivity, specificity, PPV and NPV of one positive class, each with its 95% Wilson interval."""
    out: dict[str, float | list[float] | None] = {}
    for name, num, den in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp), ("ppv", tp, tp + fp),
                           ("npv", tn, tn + fn)):
        out[name] = _ratio(num, den)
        out[f"{name}_ci95"] = _ci(wilson_ci(num, den))
    return out


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                           positive: str | None = None) -> dict:
    """All classification figures for ``labels`` ``(N,)`` int and ``probs`` ``(N, K)`` float in [0, 1].

    ``positive`` names the class that sensitivity, specificity, PPV, NPV and ``auc_positive`` are about
    (one-vs-rest when K > 2); None takes :data:`DEFAULT_POSITIVE` when present, else those fields are None.
    ``auc`` is the positive class's ROC AUC for K = 2 (the same number for either class) and the macro
    one-vs-rest AUC for K > 2 (``auc_kind`` says which).
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    pos = resolve_positive(class_names, positive)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(labels, pred, k)
    per_class = {}
    for c, name in enumerate(class_names):
        tp, fn, fp, tn = one_vs_rest_counts(cm, c)
        per_class[name] = {
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
            "precision": _ratio(tp, tp + fp),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "auc": roc_auc(labels == c, probs[:, c]) if len(probs) else None,
            "support": int(cm[c].sum()),
        }
    macro = {f"{key}_macro": _mean([v[key] for v in per_class.values()])
             for key in ("sensitivity", "specificity", "precision", "f1", "auc")}
    if pos is not None:
        tp, fn, fp, tn = one_vs_rest_counts(cm, pos)
        binary = binary_metrics(tp, fn, fp, tn)
        auc_pos = per_class[class_names[pos]]["auc"]
        auc_pos_ci = _ci(delong_ci(labels == pos, probs[:, pos]))
        counts = {"tp": tp, "fn": fn, "fp": fp, "tn": tn}
    else:
        binary = binary_metrics(0, 0, 0, 0)
        auc_pos = auc_pos_ci = counts = None
    # For two classes both one-vs-rest AUCs (and their intervals) are equal as p0 = 1 - p1, so ``auc`` needs
    # no positive class and stays what per-epoch validation has always selected checkpoints on.
    auc = per_class[class_names[-1]]["auc"] if k == 2 else macro["auc_macro"]
    auc_ci = _ci(delong_ci(labels == k - 1, probs[:, -1])) if k == 2 else None
    return {
        "count": len(labels),
        "class_names": list(class_names),
        "positive_class": class_names[pos] if pos is not None else None,
        "accuracy": _ratio(np.trace(cm), cm.sum()),
        "accuracy_ci95": _ci(wilson_ci(int(np.trace(cm)), int(cm.sum()))),
        **binary,
        "positive_counts": counts,
        "auc": auc,
        "auc_ci95": auc_ci,
        "auc_kind": "positive-class ROC AUC (binary)" if k == 2 else "macro one-vs-rest ROC AUC",
        "auc_positive": auc_pos,
        "auc_positive_ci95": auc_pos_ci,
        **macro,
        "ci_method": CI_METHOD,
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def mask_jsi(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """IoU of two ``(H, W)`` bool masks; None when both are empty (undefined, not perfect)."""
    union = np.logical_or(pred, truth).sum()
    if union == 0:
        return None
    return float(np.logical_and(pred, truth).sum() / union)


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box of all set pixels of a bool mask (the ground-truth box of a mask annotation)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return Box.from_xyxy(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def region_boxes(mask: np.ndarray) -> list[Box]:
    """Bounding box of every 8-connected region of a ``(H, W)`` bool mask."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [Box(float(x), float(y), float(w), float(h)) for x, y, w, h in stats[1:count, :4].tolist()]


def box_mask(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the union of the bounding rectangles of every 8-connected region of ``mask``.

    A mask of filled, separate boxes (a box annotation) maps to itself; boxes that touch or overlap form one
    region and so one enclosing rectangle.
    """
    out = np.zeros(mask.shape, dtype=bool)
    for box in region_boxes(mask):
        x0, y0, x1, y1 = (int(v) for v in box.as_xyxy())
        out[y0:y1, x0:x1] = True
    return out


def box_mask_jsi(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """Box JSI of one frame: IoU of :func:`box_mask` of the predicted and of the true ``(H, W)`` bool masks.

    Both sides go through the same rule, so a frame with several lesions compares all true boxes with all
    predicted ones. None without a true lesion; 0 when nothing is predicted.
    """
    if not truth.any():
        return None
    return mask_jsi(box_mask(pred), box_mask(truth))


def box_jsi(pred: Box | None, truth: Box | None) -> float | None:
    """IoU of two boxes; a missing prediction against a real box scores 0; None without a true box."""
    if truth is None:
        return None
    if pred is None:
        return 0.0
    return pred.iou(truth) if truth.area > 0 or pred.area > 0 else None


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the two-sided 95% Student-t confidence interval (NaN: undefined for one value)."""
    vals = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(vals) == 0:
        return float("nan"), float("nan")
    if len(vals) == 1:
        return float(vals[0]), float("nan")
    sem = vals.std(ddof=1) / math.sqrt(len(vals))
    return float(vals.mean()), float(_t975(len(vals) - 1) * sem)


def t_interval95(values: Sequence[float], bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Mean and the two ends of its 95% Student-t interval, the ends clipped to ``bounds`` when given.

    A proportion's mean lies in [0, 1] and a difference of two in [-1, 1], but a t-interval over three seeds can
    reach past them (0.80 +- 0.30): an end of 1.098 for a sensitivity is a number no reader can use, so study
    tables clip to the range the metric can take and say so. Clipping keeps the coverage: the true mean is
    inside the range anyway. NaN ends when fewer than two values (no interval from one run).
    """
    mean, half = mean_ci95(values)
    return (mean, *interval_ends(mean, half, bounds))


#: What a mean of proportions (accuracy, sensitivity, F1, AUC, JSI) can take, and a difference of two.
PROPORTION_RANGE, DIFFERENCE_RANGE = (0.0, 1.0), (-1.0, 1.0)


def interval_ends(mean: float, half: float, bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """``mean -+ half``, clipped to ``bounds`` when given (NaN ends stay NaN: no interval)."""
    low, high = mean - half, mean + half
    if bounds is not None and not math.isnan(half):
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return low, high


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (no SciPy dependency).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _t975(dof: int) -> float:
    return _T975[dof - 1] if dof <= len(_T975) else 1.96
