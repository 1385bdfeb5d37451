"""Mask -> box on hand-made masks; EMA smoothing; overlay drawing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from usvid.boxes import Box
from usvid.errors import ConfigError, InputError
from usvid.inference.overlay import OverlayStyle, class_colour, overlay_layout, render_prediction, to_bgr
from usvid.inference.postprocess import mask_to_box, masks_to_boxes
from usvid.inference.smoothing import TemporalSmoother
from usvid.video.roi import ScanRegion


def _fields(box):
    return (box.x, box.y, box.w, box.h, box.score)


def _mask(*blobs: tuple[int, int, int, int, float], size: int = 8) -> torch.Tensor:
    """``(1, size, size)`` mask with value ``p`` on rows ``r0:r1``, cols ``c0:c1`` of each blob."""
    m = torch.zeros(1, size, size)
    for r0, r1, c0, c1, p in blobs:
        m[0, r0:r1, c0:c1] = p
    return m


def test_box_mapped_to_wide_frame_through_the_letterbox():
    # 8x8 mask = 256 px network input. A 160x96 frame is letterboxed to 256x154 at scale 1.6, 51 px of
    # padding above. Cells rows 3-4, cols 1-2 cover input pixels x 32..96, y 96..160 -> content y 45..109
    # -> frame x 20..60 and y 45*96/154 = 28.05 .. 109*96/154 = 67.95. (Bilinear upsampling of a 1 -> 0
    # step crosses 0.5 exactly at the cell boundary.)
    box = mask_to_box(_mask((3, 5, 1, 3, 1.0)), frame_size=(160, 96))
    assert box is not None
    assert box.x == pytest.approx(20, abs=1) and box.w == pytest.approx(40, abs=1)
    assert box.y == pytest.approx(28, abs=1) and box.h == pytest.approx(40, abs=1)
    assert 0.5 < box.score <= 1.0


def test_box_mapped_to_tall_frame_through_the_letterbox():
    # A 90x150 frame: scale 256/150, content 154 px wide with 51 px padding on the left. Cells rows 1-2,
    # cols 3-4 -> input x 96..160 (content 45..109 -> frame 26.3..63.7), y 32..96 (frame 18.75..56.25).
    box = mask_to_box(_mask((1, 3, 3, 5, 1.0)), frame_size=(90, 150))
    assert box is not None
    assert box.x == pytest.approx(26.3, abs=1.5) and box.w == pytest.approx(37.4, abs=1.5)
    assert box.y == pytest.approx(18.75, abs=1.5) and box.h == pytest.approx(37.5, abs=1.5)


def test_largest_region_wins_over_the_more_confident_one():
    # a small very confident blob (top-left) and a larger, less confident one (bottom-right)
    box = mask_to_box(_mask((0, 1, 0, 1, 0.99), (4, 8, 4, 8, 0.7)), frame_size=(80, 80))
    assert box is not None
    assert box.x >= 35 and box.y >= 35  # the big blob, not the corner one
    assert box.score == pytest.approx(0.7, abs=0.05)


def test_no_lesion_when_nothing_passes():
    assert mask_to_box(torch.zeros(1, 8, 8), (100, 60)) is None
    assert mask_to_box(torch.full((1, 8, 8), 0.49), (100, 60)) is None
    assert _fields(mask_to_box(torch.full((8, 8), 0.51), (100, 60))) == (0, 0, 100, 60, pytest.approx(0.51))


def test_roi_offsets_box_into_frame_pixels():
    roi = ScanRegion(x=30, y=10, w=80, h=40)
    plain = mask_to_box(_mask((2, 5, 1, 3, 1.0)), frame_size=(80, 40))
    inside = mask_to_box(_mask((2, 5, 1, 3, 1.0)), frame_size=(200, 100), roi=roi)
    assert (inside.x, inside.y, inside.w, inside.h) == (plain.x + 30, plain.y + 10, plain.w, plain.h)


def test_batch_and_bad_values():
    masks = torch.stack([_mask((2, 5, 1, 3, 1.0)), torch.zeros(1, 8, 8)])
    boxes = masks_to_boxes(masks, (64, 48))
    assert len(boxes) == 2 and boxes[0] is not None and boxes[1] is None
    with pytest.raises(ConfigError, match="threshold"):
        masks_to_boxes(masks, (64, 48), threshold=1.5)
    with pytest.raises(ConfigError, match="ROI"):
        ScanRegion(0, 0, 0, 10)
    with pytest.raises(InputError, match="outside"):
        ScanRegion(50, 0, 20, 10).check_inside(64, 48)


def test_per_frame_smoother():
    off = TemporalSmoother.per_frame(1.0)
    p, b = off.update(0, torch.tensor([0.2, 0.8]), Box(10, 10, 20, 20, 0.9))
    assert np.array_equal(p, np.array([0.2, 0.8], np.float32))
    assert _fields(b) == (10, 10, 20, 20, pytest.approx(0.9))
    s = TemporalSmoother.per_frame(0.5)
    s.update(0, np.array([1.0, 0.0]), Box(0, 0, 10, 10, 1.0))
    p, b = s.update(1, np.array([0.0, 1.0]), Box(20, 10, 30, 10, 0.5))
    assert np.allclose(p, [0.5, 0.5])
    assert _fields(b) == (10, 5, 20, 10, pytest.approx(0.75))  # no IoU snap: boxes always blend per frame
    p, b = s.update(2, np.array([0.0, 1.0]), None)
    assert b is None and np.allclose(p, [0.25, 0.75])
    _, b = s.update(3, np.array([0.0, 1.0]), Box(40, 40, 4, 4, 0.6))
    assert b == Box(40, 40, 4, 4, 0.6)  # history was reset by the no-lesion frame
    with pytest.raises(ConfigError, match="alpha"):
        TemporalSmoother.per_frame(0.0)


def test_overlay_draws_box_in_class_colour():
    grey = np.full((73, 99), 30, np.uint8)
    img = to_bgr(grey)
    assert img.shape == (73, 99, 3)
    box = Box(20, 30, 40, 30, 0.8)
    out = render_prediction(grey, ("benign", "malignant"), np.array([0.1, 0.9]), box,
                            style=OverlayStyle(keep_ui=True))
    part = overlay_layout(99, 73).frame_part(out)
    rgb = class_colour("malignant", 1)
    bgr = np.array(rgb[::-1], np.uint8)
    assert (part[59, 20:60] == bgr).all(axis=-1).mean() > 0.9  # bottom edge of the box
    assert (part[45, 40] == 30).all()  # inside the box: untouched


def test_render_prediction_no_lesion_keeps_input():
    grey = torch.full((1, 64, 96), 50, dtype=torch.uint8)
    roi = ScanRegion(10, 5, 60, 40)
    out = render_prediction(grey, ("benign", "malignant"), torch.tensor([0.7, 0.3]), None, roi=roi,
                            style=OverlayStyle(keep_ui=True))
    layout = overlay_layout(96, 64)
    part = layout.frame_part(out)
    assert out.shape == (layout.canvas_height, layout.canvas_width, 3) and out.dtype == np.uint8
    assert (grey == 50).all()  # the source frame is not drawn on
    assert (part[4, 30] != 50).any()  # ROI outline drawn, one pixel outside the region
    assert (part[5:45, 10:70] == 50).all()  # ... so no scan pixel is covered
    assert (part[60, 90] == 50).all()  # far corner untouched
    colour = np.array(class_colour("benign", 0)[::-1], np.uint8)
    assert (out[: layout.bar] == colour).all(axis=-1).any()  # class label in the benign colour, in the bar
