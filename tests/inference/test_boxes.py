"""usvid.boxes: the one box type, IoU, largest region, and the lesion-pixel rule evaluation and inference share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from usvid.boxes import MASK_THRESHOLD, Box, box_iou, largest_region_box, lesion_pixels
from usvid.inference.overlay import lesion_contours
from usvid.inference.postprocess import mask_to_box
from usvid.training.predictions import score_localisation


def test_box_is_coco_xywh():
    b = Box.from_xyxy(10, 20, 40, 30, score=0.5)
    assert (b.x, b.y, b.w, b.h, b.score) == (10, 20, 30, 10, 0.5)
    assert b.as_xyxy() == (10, 20, 40, 30) and b.to_coco() == [10.0, 20.0, 30.0, 10.0]
    assert all(isinstance(v, float) for v in Box(1, 2, 3, 4).to_coco())
    assert Box(0.123, 0, 1, 1).to_coco(2) == [0.12, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("values", [(0, 0, -1, 5), (0, 0, 5, -0.5), (float("nan"), 0, 1, 1), (0, float("inf"), 1, 1)])
def test_bad_boxes_are_refused(values):
    with pytest.raises(ValueError, match="box"):
        Box(*values)


def test_iou():
    a, b = Box(0, 0, 4, 4), Box(2, 0, 4, 4)
    assert box_iou(a, b) == a.iou(b) == pytest.approx(8 / 24)
    assert a.iou(a) == 1.0 and a.iou(Box(10, 10, 1, 1)) == 0.0
    assert Box(0, 0, 0, 0).iou(Box(0, 0, 0, 0)) == 0.0


def test_largest_region_box_is_8_connected_and_exclusive_end():
    m = np.zeros((20, 30), bool)  # non-square: an H/W swap fails
    m[1:3, 1:3] = True  # 4 px
    m[10, 5] = m[11, 6] = m[12, 7] = True  # a diagonal: one region only with 8-connectivity
    m[13:15, 8:12] = True
    assert largest_region_box(m) == Box(5, 10, 7, 5)
    assert largest_region_box(np.zeros((5, 7), bool)) is None


def test_lesion_pixel_rule_is_at_or_above_the_threshold():
    p = np.array([MASK_THRESHOLD - 1e-6, MASK_THRESHOLD, MASK_THRESHOLD + 1e-6])
    assert lesion_pixels(p).tolist() == [False, True, True]


def test_evaluation_and_inference_apply_the_same_rule():
    """A mask exactly at the threshold is lesion for the box, the overlay outline and the scored JSI alike;
    each side breaks this test if it moves to ``>``."""
    at = np.full((4, 4), MASK_THRESHOLD, np.float32)
    below = np.nextafter(at, np.float32(0))
    box = mask_to_box(torch.from_numpy(at), (64, 48))
    assert box is not None and box.as_xyxy() == (0, 0, 64, 48)
    assert mask_to_box(torch.from_numpy(below), (64, 48)) is None
    assert len(lesion_contours(at, (64, 48))) == 1 and lesion_contours(below, (64, 48)) == ()
    truth = np.full((128, 128), 255, np.uint8)
    assert score_localisation(at, truth, 128) == (1.0, 1.0)
    assert score_localisation(below, truth, 128) == (0.0, 0.0)
