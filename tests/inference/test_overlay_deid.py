"""The overlay renderer: de-identification, the label bar, honest states; measured on real clinical clips."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

from usvid.boxes import Box
from usvid.errors import ConfigError
from usvid.inference import overlay
from usvid.inference.overlay import (
    OverlayStyle,
    class_colour,
    lesion_contours,
    overlay_layout,
    render_prediction,
)
from usvid.inference.postprocess import mask_to_box
from usvid.video.roi import ScanRegion

NAMES = ("benign", "malignant")
# Odd, non-square: an H/W swap or a missing even-padding shows.
W, H = 181, 123
ROI = ScanRegion(40, 30, 110, 80)


def frame_with_text() -> np.ndarray:
    """``(H, W)`` uint8: mid-grey speckle inside ``ROI``, bright "burned-in" text left of it and above it."""
    rng = np.random.default_rng(0)
    grey = np.zeros((H, W), np.uint8)
    grey[ROI.y : ROI.y + ROI.h, ROI.x : ROI.x + ROI.w] = rng.integers(60, 140, (ROI.h, ROI.w))
    cv2.putText(grey, "DOE J", (0, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    cv2.putText(grey, "01/02", (0, 70), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 250, 1)
    return grey


def outside(roi: ScanRegion, mask: np.ndarray | None = None) -> np.ndarray:
    keep = np.zeros((H, W), bool)
    keep[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w] = True if mask is None else mask > 0
    return ~keep


def render(probs=(0.3, 0.7), box=None, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """The canvas and its frame part."""
    canvas = render_prediction(frame_with_text(), NAMES, probs, box, **kwargs)
    return canvas, overlay_layout(W, H).frame_part(canvas)


def test_text_outside_the_region_is_blanked_and_kept_only_with_keep_ui():
    grey = frame_with_text()
    assert grey[outside(ROI)].max() == 255  # the text is there to leak
    _, part = render(roi=ROI)
    assert part[outside(ROI)].max() == 0
    _, kept = render(roi=ROI, style=OverlayStyle(keep_ui=True))
    assert kept[outside(ROI)].max() == 255


def test_the_region_mask_blanks_inside_the_rectangle_too():
    mask = np.ones((ROI.h, ROI.w), np.uint8)
    mask[:20, :30] = 0  # a sector's corner, where a marker sits
    roi = ScanRegion(ROI.x, ROI.y, ROI.w, ROI.h, mask)
    _, part = render(roi=roi)
    assert part[outside(roi, mask)].max() == 0
    assert (part[ROI.y + 40, ROI.x + 50] > 0).all()  # the scan itself is shown


def test_no_region_known_shows_no_frame_pixel():
    # Detection still running (stream) or failed (predict): the model saw the whole frame, the viewer none.
    for detecting in (True, False):
        canvas, part = render(roi=None, box=Box(50, 40, 30, 20, 0.9), detecting=detecting)
        assert part.max() == 0
        assert canvas[: overlay_layout(W, H).bar].max() > 0  # the bar says why
    _, kept = render(roi=None, style=OverlayStyle(keep_ui=True))
    assert kept.max() == 255


def test_label_bar_covers_no_image_pixel_and_sides_are_even():
    # A class label, "no lesion", the legend: all in the bar; the image is exactly the blanked input.
    canvas, part = render(roi=ROI)
    layout = overlay_layout(W, H)
    assert canvas.shape == (layout.canvas_height, layout.canvas_width, 3)
    assert canvas.shape[0] % 2 == 0 and canvas.shape[1] % 2 == 0 and canvas.shape[0] > H
    expected = frame_with_text()
    expected[outside(ROI)] = 0
    np.testing.assert_array_equal(part, np.repeat(expected[..., None], 3, axis=2))
    assert canvas[layout.bar + H :].max() == 0 and canvas[layout.bar :, W:].max() == 0  # even padding: black


def test_uncertain_prediction_is_neutral_not_the_class_colour():
    red = np.array(class_colour("malignant", 1)[::-1], np.uint8)
    grey = np.array(overlay.UNCERTAIN_COLOUR[::-1], np.uint8)
    bar = slice(0, overlay_layout(W, H).bar)

    def has(canvas, colour):
        return (canvas[bar] == colour).all(axis=-1).sum()

    unsure, _ = render(probs=(0.49, 0.51), roi=ROI)
    sure, _ = render(probs=(0.2, 0.8), roi=ROI)
    assert has(unsure, red) == 0 and has(unsure, grey) > 50
    assert has(sure, red) > 50
    # "below" is strict: exactly the threshold is a call (0.75: exact in float32, unlike 0.6)
    at_threshold, _ = render(probs=(0.25, 0.75), roi=ROI, style=OverlayStyle(uncertain_below=0.75))
    assert has(at_threshold, red) > 50


def test_box_is_drawn_only_at_or_above_the_box_score_threshold():
    red = np.array(class_colour("malignant", 1)[::-1], np.uint8)
    box = (50, 40, 60, 30)

    def box_pixels(score: float) -> int:
        style = OverlayStyle(box_min_score=0.6)
        _, part = render(probs=(0.1, 0.9), roi=ROI, box=Box(*box, score), style=style)
        return int((part == red).all(axis=-1).sum())

    assert box_pixels(0.59) == 0
    assert box_pixels(0.6) > 2 * (box[2] + box[3])  # the whole outline, at least one pixel wide


def test_lesion_mask_contour_is_drawn_in_frame_pixels():
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, 1:3, 1:3] = 0.9
    contours = lesion_contours(mask, (W, H), ROI, 0.5, input_size=128)
    box = mask_to_box(mask, (W, H), ROI, 0.5, input_size=128)
    assert len(contours) == 1
    xs, ys = contours[0][:, 0, 0], contours[0][:, 0, 1]
    # The outline is the box's region: its extremes lie on the box edges (within the rounding of both).
    assert abs(xs.min() - box.x) <= 1 and abs(xs.max() - (box.x + box.w - 1)) <= 1
    assert abs(ys.min() - box.y) <= 1 and abs(ys.max() - (box.y + box.h - 1)) <= 1
    assert lesion_contours(np.zeros((4, 4), np.float32), (W, H), ROI) == ()
    red = np.array(class_colour("malignant", 1)[::-1], np.uint8)
    _, with_c = render(probs=(0.1, 0.9), roi=ROI, box=box, contours=contours)
    _, without = render(probs=(0.1, 0.9), roi=ROI, box=box)
    assert (with_c == red).all(axis=-1).sum() > (without == red).all(axis=-1).sum()


def test_every_number_on_the_overlay_is_a_whole_percentage(monkeypatch):
    texts: list[str] = []
    real = cv2.putText

    def spy(img, text, *args, **kwargs):
        texts.append(text)
        return real(img, text, *args, **kwargs)

    grey = frame_with_text()
    monkeypatch.setattr(overlay.cv2, "putText", spy)
    render_prediction(grey, NAMES, (0.3, 0.7), Box(50, 40, 30, 20, 0.734), roi=ROI)
    render_prediction(grey, NAMES, (0.49, 0.51), Box(50, 40, 30, 20, 0.41), roi=ROI)
    numbers = [n for t in texts for n in re.findall(r"\d+(?:\.\d+)?%?", t)]
    assert numbers and all(re.fullmatch(r"\d+%", n) for n in numbers), texts
    assert any("73%" in t for t in texts) and any("uncertain" in t for t in texts)


def test_bad_thresholds_are_refused():
    with pytest.raises(ConfigError, match="uncertain_below"):
        OverlayStyle(uncertain_below=1.2)
    with pytest.raises(ConfigError, match="box_min_score"):
        OverlayStyle(box_min_score=-0.1)


def test_torch_and_colour_frames_render_the_same():
    grey = frame_with_text()
    a = render_prediction(torch.from_numpy(grey)[None], NAMES, torch.tensor([0.3, 0.7]), None, roi=ROI)
    b = render_prediction(np.repeat(grey[..., None], 3, axis=2), NAMES, np.array([0.3, 0.7]), None, roi=ROI)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------------ real clips


@pytest.mark.realdata
@pytest.mark.parametrize("clip", ["0011.mp4", "0012.mp4", "0013.mp4", "echo-with-borders.mp4",
                                  "low-frame-count.mov", "odd-window-size.mov", "ruq-simple.mp4",
                                  "simple-soft-tissue.mp4", "test.mp4"])
def test_clinical_clip_overlay_shows_no_burned_in_text(shared_data, clip):
    """``usvid predict``'s overlay of a real clip with vendor UI shows nothing outside its scan region.

    The region is detected as ``usvid predict`` does (:func:`usvid.inference.predict.scan_region`); every
    8th of the first 160 frames is rendered. Checked on the rendered canvas, not on the region's mask:

    - every pixel of the frame part outside the region (its mask) is exactly 0;
    - **burned-in text pixel**: a pixel inside one of the clip's hand-annotated text boxes
      (``CLINICAL_UI`` in ``tests/helpers/clinical.py``: names, dates, settings, scales, annotated by eye,
      not by the detector) that is bright (> 40) in at least one sampled source frame. None may be
      non-zero in any rendered frame;
    - of a marker's bright pixels (an orientation mark at the sector's edge) at most a 2 % sliver shows;
    - and the scan is shown: >= 95 % of the bright pixels of the annotated scan box (less text and
      markers); the region's edges may sit a few pixels inside the annotation (``TOLERANCE`` there), and
      bright pixels crowd the sector's edges (low-frame-count.mov: 96.7 %).
    """
    from tests.helpers.clinical import CLINICAL_UI
    from usvid.inference.frames import FrameReader
    from usvid.inference.predict import PredictConfig, VideoSource, scan_region

    path = shared_data / "videos" / "clinical-ui" / clip
    with FrameReader(path) as reader:
        roi, method = scan_region(VideoSource(clip, path), PredictConfig(), reader.info.width, reader.info.height)
        assert roi is not None and method == "auto"
        frames = np.concatenate([b[:, 0].numpy() for b, _ in reader.batches(32)])[:160:8]
    height, width = frames.shape[1:]
    keep = np.zeros((height, width), bool)
    keep[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w] = True if roi.mask is None else roi.mask > 0
    ink = frames.max(axis=0) > 40
    (sx0, sy0, sx1, sy1), texts, markers = CLINICAL_UI[clip]
    scan = np.zeros_like(ink)
    scan[sy0:sy1, sx0:sx1] = ink[sy0:sy1, sx0:sx1]
    for x0, y0, x1, y1 in texts + markers:
        scan[y0:y1, x0:x1] = False
    layout = overlay_layout(width, height)
    seen = np.zeros_like(ink)
    for grey in frames:
        part = layout.frame_part(render_prediction(grey, NAMES, (0.3, 0.7), None, roi=roi)).max(axis=-1)
        seen |= part > 40
        assert part[~keep].max() == 0
        for x0, y0, x1, y1 in texts:
            shown = (part[y0:y1, x0:x1] > 0) & ink[y0:y1, x0:x1]
            assert not shown.any(), f"{clip}: text pixels at {(x0, y0, x1, y1)} shown: {int(shown.sum())}"
        for x0, y0, x1, y1 in markers:
            shown = (part[y0:y1, x0:x1] > 0) & ink[y0:y1, x0:x1]
            assert shown.sum() <= 0.02 * ink[y0:y1, x0:x1].sum()
    assert (seen & scan).sum() >= 0.95 * scan.sum()  # not a trivially black overlay


def test_predict_config_and_cli_carry_the_overlay_settings():
    from typer.testing import CliRunner
    from usvid.cli.app import app

    from usvid.inference.predict import PredictConfig

    assert PredictConfig().overlay_style == OverlayStyle()  # de-identified by default
    assert PredictConfig(keep_ui=True, box_min_score=0.7).overlay_style == OverlayStyle(True, 0.6, 0.7)
    with pytest.raises(ConfigError, match="uncertain_below"):
        PredictConfig(uncertain_below=1.0)
    assert "--keep-ui" in CliRunner().invoke(app, ["predict", "--help"], terminal_width=200).output
