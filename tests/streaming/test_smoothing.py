"""Temporal smoothing in source time: EMA of probabilities, box smoothing, presence hysteresis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from usvid.boxes import Box, box_iou
from usvid.inference.smoothing import TemporalSmoother

BOX = Box.from_xyxy(40.0, 30.0, 90.0, 70.0, score=0.9)


def _fields(box):
    return (box.x, box.y, box.w, box.h, box.score)


def test_first_frame_passes_through():
    s = TemporalSmoother(tau_s=0.2)
    out = s.update(0.0, np.array([0.3, 0.7]), Box(40, 30, 50, 40, 0.8))
    assert out.probs.shape == (2,) and out.probs.dtype == np.float32
    np.testing.assert_allclose(out.probs, [0.3, 0.7])
    assert _fields(out.box) == (40, 30, 50, 40, pytest.approx(0.8))


def test_probability_ema_weight_follows_source_time():
    s = TemporalSmoother(tau_s=0.2)
    s.update(0.0, np.array([1.0, 0.0]), None)
    out = s.update(0.1, np.array([0.0, 1.0]), None)
    w = 1 - math.exp(-0.1 / 0.2)
    np.testing.assert_allclose(out.probs, [1 - w, w], rtol=1e-6)
    assert out.probs.sum() == pytest.approx(1.0)


def test_same_smoothing_whatever_the_frame_rate():
    """30 fps and 10 fps (frames dropped) reach the same state after the same source time."""
    ends = []
    for fps in (30, 10):
        s = TemporalSmoother(tau_s=0.15)
        s.update(0.0, np.array([1.0, 0.0]), None)
        for i in range(1, fps // 2 + 1):
            out = s.update(i / fps, np.array([0.0, 1.0]), None)
        ends.append(out.probs)
    np.testing.assert_allclose(ends[0], ends[1], atol=1e-5)


def test_box_blinking_out_for_one_frame_stays_shown():
    s = TemporalSmoother(tau_s=0.15)
    for i in range(10):
        s.update(i / 30, np.array([0.5, 0.5]), BOX)
    out = s.update(10 / 30, np.array([0.5, 0.5]), None)
    assert out.box is not None
    for i in range(11, 30):  # gone for good: disappears within a few tau
        out = s.update(i / 30, np.array([0.5, 0.5]), None)
    assert out.box is None


def test_box_moves_smoothly_and_jumps_to_a_new_lesion():
    s = TemporalSmoother(tau_s=0.15)
    s.update(0.0, np.array([0.5, 0.5]), BOX)
    shifted = Box(44.0, 30.0, 50.0, 40.0, 0.9)
    out = s.update(1 / 30, np.array([0.5, 0.5]), shifted)
    assert BOX.x < out.box.x < shifted.x and out.box.w == pytest.approx(50)  # blended
    far = Box(150.0, 10.0, 20.0, 15.0, 0.9)
    out = s.update(2 / 30, np.array([0.5, 0.5]), far)
    assert out.box == far  # no overlap: snap, don't slide across the image


def test_time_going_back_resets():
    s = TemporalSmoother(tau_s=0.15)
    s.update(5.0, np.array([1.0, 0.0]), None)
    out = s.update(0.0, np.array([0.0, 1.0]), None)
    np.testing.assert_allclose(out.probs, [0.0, 1.0])


def test_bad_tau():
    with pytest.raises(ValueError, match="tau_s must be positive"):
        TemporalSmoother(tau_s=0)


def test_box_iou():
    assert box_iou(BOX, BOX) == pytest.approx(1.0)
    assert box_iou(BOX, Box(0.0, 0.0, 10.0, 10.0)) == 0.0
