"""Metrics against hand-computed values and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from usvid.boxes import Box, largest_region_box
from usvid.errors import InputError
from usvid.training import metrics


def test_classification_metrics_hand_example():
    labels = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]])
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant"])
    assert m["confusion"] == [[2, 1], [1, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    b, mal = m["per_class"]["benign"], m["per_class"]["malignant"]
    assert b["sensitivity"] == pytest.approx(2 / 3) and b["specificity"] == pytest.approx(1 / 2)
    assert mal["precision"] == pytest.approx(1 / 2) and mal["f1"] == pytest.approx(2 / 4)
    assert m["sensitivity_macro"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["f1_macro"] == pytest.approx((b["f1"] + mal["f1"]) / 2)
    # binary: both one-vs-rest AUCs are the same number
    assert b["auc"] == pytest.approx(mal["auc"]) == pytest.approx(m["auc"]) == pytest.approx(m["auc_positive"])


def _from_confusion(cm):
    """Labels and one-hot-ish probabilities whose argmax reproduces the ``(K, K)`` confusion ``cm``."""
    labels, probs = [], []
    k = len(cm)
    for true, row in enumerate(cm):
        for pred, count in enumerate(row):
            p = np.full(k, 0.1 / (k - 1))
            p[pred] = 0.9
            labels += [true] * count
            probs += [p] * count
    return np.array(labels), np.array(probs)


def test_binary_metrics_are_the_positive_class_not_macro_averages():
    # malignant = positive: 8 TP, 2 FN, 3 FP, 7 TN (rows truth, columns prediction, benign first)
    labels, probs = _from_confusion([[7, 3], [2, 8]])
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant"])
    assert m["positive_class"] == "malignant" and m["class_names"] == ["benign", "malignant"]
    assert m["confusion"] == [[7, 3], [2, 8]]
    assert m["positive_counts"] == {"tp": 8, "fn": 2, "fp": 3, "tn": 7}
    assert m["sensitivity"] == pytest.approx(0.8) and m["specificity"] == pytest.approx(0.7)
    assert m["ppv"] == pytest.approx(8 / 11) and m["npv"] == pytest.approx(7 / 9)
    assert m["accuracy"] == pytest.approx(15 / 20)
    # the macro figures keep their own names: balanced accuracy, not the positive class
    assert m["sensitivity_macro"] == pytest.approx(0.75) and m["specificity_macro"] == pytest.approx(0.75)
    assert m["precision_macro"] == pytest.approx((7 / 9 + 8 / 11) / 2)
    # Wilson score intervals, textbook values for 8/10 and 7/10
    assert m["sensitivity_ci95"] == pytest.approx([0.4902, 0.9433], abs=1e-4)
    assert m["specificity_ci95"] == pytest.approx([0.3968, 0.8922], abs=1e-4)
    assert "Wilson" in m["ci_method"]["proportions"] and "DeLong" in m["ci_method"]["auc"]
    # naming the other class as positive swaps the roles
    s = metrics.classification_metrics(labels, probs, ["benign", "malignant"], positive="benign")
    assert (s["sensitivity"], s["specificity"]) == pytest.approx((0.7, 0.8))
    assert (s["ppv"], s["npv"]) == pytest.approx((7 / 9, 8 / 11))


def test_positive_class_one_vs_rest_for_three_classes_and_auc_is_labelled_macro():
    # rows truth (benign, malignant, normal), columns prediction
    labels, probs = _from_confusion([[5, 1, 0], [2, 6, 2], [0, 1, 3]])
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant", "normal"])
    assert m["positive_counts"] == {"tp": 6, "fn": 4, "fp": 2, "tn": 8}
    assert m["sensitivity"] == pytest.approx(0.6) and m["specificity"] == pytest.approx(0.8)
    assert m["ppv"] == pytest.approx(0.75) and m["npv"] == pytest.approx(8 / 12)
    assert m["auc_kind"] == "macro one-vs-rest ROC AUC" and m["auc_ci95"] is None
    assert m["auc"] == pytest.approx(m["auc_macro"])
    assert m["auc_positive"] == pytest.approx(m["per_class"]["malignant"]["auc"])


def test_unknown_positive_class_names_the_classes():
    with pytest.raises(InputError, match=r"'cancer' is not one of the classes \['benign', 'normal'\]"):
        metrics.classification_metrics(np.array([0, 1]), np.eye(2), ["benign", "normal"], positive="cancer")
    # without a named positive and without 'malignant' the positive-class figures are left undefined
    m = metrics.classification_metrics(np.array([0, 1]), np.eye(2), ["benign", "normal"])
    assert m["positive_class"] is None and m["sensitivity"] is None and m["accuracy"] == 1.0


def test_wilson_interval_known_values():
    assert metrics.wilson_ci(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert metrics.wilson_ci(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # not degenerate at 0/n
    assert metrics.wilson_ci(0, 0) is None


def test_delong_interval_hand_example():
    # positives 0.9, 0.8, 0.4; negatives 0.7, 0.3: V10 = (1, 1, 1/2), V01 = (2/3, 1), AUC 5/6,
    # var = var(V10)/3 + var(V01)/2 = (1/12)/3 + (1/18)/2 = 1/18
    pos = np.array([1, 1, 1, 0, 0], bool)
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3])
    half = 1.959964 * np.sqrt(1 / 18)
    assert metrics.delong_ci(pos, scores) == pytest.approx((5 / 6 - half, 1.0), abs=1e-6)
    m = metrics.classification_metrics(pos.astype(int), np.stack([1 - scores, scores], 1), ["benign", "malignant"])
    assert m["auc"] == pytest.approx(5 / 6) and m["auc_ci95"] == pytest.approx([5 / 6 - half, 1.0], abs=1e-6)


def test_delong_variance_matches_pairwise_components_with_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, size=30).astype(float)
    pos = rng.random(30) > 0.5
    p, n = scores[pos], scores[~pos]
    psi = (p[:, None] > n[None, :]) + 0.5 * (p[:, None] == n[None, :])
    auc = psi.mean()
    se = np.sqrt(psi.mean(1).var(ddof=1) / len(p) + psi.mean(0).var(ddof=1) / len(n))
    lo, hi = metrics.delong_ci(pos, scores)
    assert lo == pytest.approx(max(0.0, auc - 1.959964 * se)) and hi == pytest.approx(min(1.0, auc + 1.959964 * se))


def _brute_auc(pos, scores):
    p = [s for s, y in zip(scores, pos) if y]
    n = [s for s, y in zip(scores, pos) if not y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(p, n))
    return wins / (len(p) * len(n))


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=40).astype(float)  # many ties
    pos = rng.random(40) > 0.4
    assert metrics.roc_auc(pos, scores) == pytest.approx(_brute_auc(pos, scores))
    assert metrics.roc_auc(np.ones(3, bool), np.arange(3.0)) is None


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auc():
    rng = np.random.default_rng(1)
    scores = rng.random(50)
    pos = rng.random(50) > 0.5
    fpr, tpr = metrics.roc_curve(pos, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.roc_auc(pos, scores))


def test_mask_and_box_jsi():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:4, 0:4] = True
    b[2:6, 0:4] = True
    assert metrics.mask_jsi(a, b) == pytest.approx(8 / 24)
    assert metrics.mask_jsi(np.zeros_like(a), np.zeros_like(b)) is None
    assert metrics.box_jsi(Box(0, 0, 4, 4), Box(2, 0, 4, 4)) == pytest.approx(8 / 24)
    assert metrics.box_jsi(None, Box(0, 0, 1, 1)) == 0.0


def _two_lesions():
    truth = np.zeros((64, 96), np.uint8)  # non-square: an H/W swap fails
    truth[8:18, 10:20] = 255  # lesion A: 10 x 10
    truth[40:60, 60:80] = 255  # lesion B: 20 x 20
    return truth


def test_box_jsi_compares_all_true_boxes_with_all_predicted_regions():
    truth = _two_lesions() > 127
    # A perfect prediction of both lesions scores 1. The old rule (largest predicted region vs one rectangle
    # around both true boxes) gave 400 / (70 * 52) = 0.11 for it.
    assert metrics.box_mask_jsi(truth, truth) == pytest.approx(1.0)
    # Finding only lesion B: its box over the union of both true boxes (the old rule: 256 / 3640 = 0.07)
    only_b = np.zeros_like(truth)
    only_b[42:58, 62:78] = True  # a blob inside B: its box is 16 x 16
    assert metrics.box_mask_jsi(only_b, truth) == pytest.approx(256 / 500)
    # a blob inside each lesion: the predicted boxes sit inside the true ones
    both = only_b.copy()
    both[10:16, 12:18] = True
    assert metrics.box_mask_jsi(both, truth) == pytest.approx((256 + 36) / 500)
    assert metrics.box_mask_jsi(np.zeros_like(truth), truth) == 0.0
    assert metrics.box_mask_jsi(truth, np.zeros_like(truth)) is None


def test_box_mask_fills_each_region_box():
    m = np.zeros((20, 30), bool)
    m[2, 3] = m[6, 9] = True  # two separate pixels
    m[10:15, 20:22] = True
    m[12, 22:25] = True  # an L shape: its box is rows 10..14, cols 20..24
    assert [b.as_xyxy() for b in metrics.region_boxes(m)] == [(3, 2, 4, 3), (9, 6, 10, 7), (20, 10, 25, 15)]
    assert metrics.box_mask(m).sum() == 1 + 1 + 25


def test_largest_region_box_ignores_smaller_blobs():
    m = np.zeros((20, 20), bool)
    m[1:3, 1:3] = True  # 4 px
    m[10:15, 5:12] = True  # 35 px
    assert largest_region_box(m) == Box(5.0, 10.0, 7.0, 5.0)
    assert largest_region_box(np.zeros((5, 5), bool)) is None
    assert metrics.mask_box(m).as_xyxy() == (1.0, 1.0, 12.0, 15.0)


def test_mean_ci95_uses_student_t():
    mean, half = metrics.mean_ci95([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    mean, half = metrics.mean_ci95([5.0])
    assert mean == 5.0 and np.isnan(half)  # no interval from one run


def test_t_interval95_clips_to_the_metrics_range():
    # 0.6, 0.8, 1.0: mean 0.8, half-width 4.303 * 0.2 / sqrt(3) = 0.497, so the raw interval is [0.303, 1.297].
    mean, low, high = metrics.t_interval95([0.6, 0.8, 1.0], bounds=(0.0, 1.0))
    assert mean == pytest.approx(0.8)
    assert low == pytest.approx(0.8 - 4.303 * 0.2 / np.sqrt(3))
    assert high == 1.0
    mean, low, high = metrics.t_interval95([-0.9, -0.5, -0.1], bounds=(-1.0, 1.0))
    assert (low, high) == (-1.0, pytest.approx(-0.5 + 4.303 * 0.4 / np.sqrt(3)))
    # Without bounds the ends are the plain t-interval; from one value there is none.
    assert metrics.t_interval95([0.6, 0.8, 1.0])[2] == pytest.approx(0.8 + 4.303 * 0.2 / np.sqrt(3))
    assert all(np.isnan(x) for x in metrics.t_interval95([0.5], bounds=(0.0, 1.0))[1:])
