"""Metrics against hand-computed values and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from usvid.training import metrics


def test_classification_metrics_hand_example():
    labels = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]])
    m = metrics.classification_metrics(labels, probs, ["benign", "malignant"])
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    b, mal = m["per_class"]["benign"], m["per_class"]["malignant"]
    assert b["sensitivity"] == pytest.approx(2 / 3) and b["specificity"] == pytest.approx(1 / 2)
    assert mal["precision"] == pytest.approx(1 / 2) and mal["f1"] == pytest.approx(2 / 4)
    assert m["sensitivity"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["f1_macro"] == pytest.approx((b["f1"] + mal["f1"]) / 2)
    # binary: both one-vs-rest AUCs are the same number
    assert b["auc"] == pytest.approx(mal["auc"]) == pytest.approx(m["auc"])


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
    assert metrics.box_jsi((0, 0, 4, 4), (2, 0, 6, 4)) == pytest.approx(8 / 24)
    assert metrics.box_jsi(None, (0, 0, 1, 1)) == 0.0


def test_largest_region_box_ignores_smaller_blobs():
    m = np.zeros((20, 20), bool)
    m[1:3, 1:3] = True  # 4 px
    m[10:15, 5:12] = True  # 35 px
    assert metrics.largest_region_box(m) == (5.0, 10.0, 12.0, 15.0)
    assert metrics.largest_region_box(np.zeros((5, 5), bool)) is None
    assert metrics.mask_box(m) == (1.0, 1.0, 12.0, 15.0)


def test_mean_ci95_uses_student_t():
    mean, half = metrics.mean_ci95([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    mean, half = metrics.mean_ci95([5.0])
    assert mean == 5.0 and np.isnan(half)  # no interval from one run
