"""Draw a prediction on a frame: the one overlay renderer of ``usvid predict`` and ``usvid stream``.

What is drawn, and why:

- **De-identified by default.** Only the scan region's pixels are shown: everything outside its mask (or its
  rectangle when it has none) is set to 0, so burned-in names, dates and IDs beside the scan never reach an
  overlay video, a recording, the browser or the window. While no region is known (the stream's detector is
  still looking, or detection failed and the model sees the whole frame) *no* source pixel is shown: the
  image area is black and the bar says why. ``keep_ui`` shows the whole frame instead.
- **A label bar above the frame.** Class, lesion, region state, legend and (stream only) the status line
  are written in a bar of :data:`BAR_LINES` text lines above the image, so no image pixel is ever covered
  by text (frames narrower than about 320 px clip the longest lines at the right); the canvas is
  padded to even sides (4:2:0 H.264 needs them). Only the lesion box and its mask contour are drawn on the
  image. :func:`overlay_layout` gives the canvas size and where the frame sits in it.
- **Honest states.** A top-class probability below ``uncertain_below`` is drawn in a neutral colour and
  labelled "uncertain"; a box is drawn only when its score reaches ``box_min_score`` (otherwise the bar
  says it was hidden); both thresholds are written in the legend line. Every probability and score is a
  percentage without decimals (:func:`percent`).

Images are OpenCV-style ``(H, W, 3)`` uint8 **BGR** numpy arrays; :func:`to_bgr` turns grey frames into that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from usvid.boxes import MASK_THRESHOLD, Box, lesion_pixels
from usvid.errors import ConfigError
from usvid.inference.geometry import mask_to_content
from usvid.video.roi import ScanRegion, full_frame_region

FONT = cv2.FONT_HERSHEY_SIMPLEX
# RGB. Fixed colours for the class names the paper uses; other names take the palette by class index.
NAMED_COLOURS = {"benign": (40, 200, 80), "malignant": (235, 50, 50), "normal": (70, 140, 255)}
PALETTE = ((255, 190, 0), (200, 80, 255), (0, 210, 210), (255, 120, 40), (150, 150, 150))
#: Neither class colour: an uncertain prediction must not read as "benign" or "malignant" at a glance.
UNCERTAIN_COLOUR = (150, 150, 150)
ROI_COLOUR = (0, 200, 255)
BAR_FILL = (24, 24, 24)  # RGB
BAR_INK = (230, 230, 230)
LEGEND_INK = (160, 160, 160)
NOTICE_INK = (255, 190, 0)
BAR_LINES = 4  # class and lesion | region state | legend | the stream's status (empty elsewhere)
STATUS_LINE = 3

UNCERTAIN_BELOW = 0.6
BOX_MIN_SCORE = 0.6


@dataclass(frozen=True)
class OverlayStyle:
    """How predictions are drawn; built from :class:`~usvid.inference.predict.PredictConfig` or the stream's.

    Attributes:
        keep_ui: show the whole frame (burned-in text included) instead of only the scan region.
        uncertain_below: a top-class probability below this is shown as "uncertain" in a neutral colour
            (0.6 for two classes: 51% malignant is not a malignant call); 0 turns it off.
        box_min_score: the lesion box (mean mask probability over the lesion) is drawn only at or above
            this score.
    """

    keep_ui: bool = False
    uncertain_below: float = UNCERTAIN_BELOW
    box_min_score: float = BOX_MIN_SCORE

    def __post_init__(self) -> None:
        if not 0.0 <= self.uncertain_below < 1.0:
            raise ConfigError(f"uncertain_below must lie in [0, 1) (0 = off), got {self.uncertain_below}")
        if not 0.0 <= self.box_min_score < 1.0:
            raise ConfigError(f"box_min_score must lie in [0, 1) (0 = every box), got {self.box_min_score}")

    def is_uncertain(self, top_probability: float) -> bool:
        """The one rule for "uncertain" (overlay, live page): the top class's probability below the threshold."""
        return top_probability < self.uncertain_below

    def legend(self) -> str:
        return f"uncertain < {percent(self.uncertain_below)} | box if score >= {percent(self.box_min_score)}"


@dataclass(frozen=True)
class OverlayLayout:
    """Where a ``width x height`` frame sits on the overlay canvas: below a bar of ``bar`` rows.

    The canvas is ``canvas_width x canvas_height`` (both even); rows and columns past the frame are black.
    """

    width: int
    height: int
    bar: int
    line: int

    @property
    def canvas_width(self) -> int:
        return self.width + self.width % 2

    @property
    def canvas_height(self) -> int:
        return self.bar + self.height + (self.bar + self.height) % 2

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the canvas."""
        return self.canvas_width, self.canvas_height

    def frame_part(self, canvas: np.ndarray) -> np.ndarray:
        """The ``(height, width, 3)`` view of ``canvas`` that holds the frame."""
        return canvas[self.bar : self.bar + self.height, : self.width]

    def line_origin(self, index: int) -> int:
        """Top row of text line ``index`` (0-based) in the bar."""
        return 2 + index * self.line


def overlay_layout(width: int, height: int) -> OverlayLayout:
    """The canvas layout for a ``width x height`` frame (fixed per frame size, so videos keep one size)."""
    scale, thick = text_metrics((height, width))
    (_, th), base = cv2.getTextSize("Ag%", FONT, scale, thick)
    line = th + base + 6
    return OverlayLayout(width, height, BAR_LINES * line + 4, line)


def percent(p: float) -> str:
    """The one number format of the overlay: a probability as a whole percentage, ``0.514 -> '51%'``."""
    return f"{float(p):.0%}"


def class_colour(name: str, index: int) -> tuple[int, int, int]:
    """RGB colour for a class: fixed for benign / malignant / normal, else by ``index`` from a palette."""
    return NAMED_COLOURS.get(name.lower(), PALETTE[index % len(PALETTE)])


def _bgr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (rgb[2], rgb[1], rgb[0])


def to_bgr(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    """Grey ``(H, W)`` / ``(1, H, W)`` or colour ``(H, W, 3)`` uint8 -> a new contiguous ``(H, W, 3)`` BGR."""
    arr = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(arr, dtype=np.uint8), cv2.COLOR_GRAY2BGR)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"frame must be (H, W), (1, H, W) or (H, W, 3) uint8, got shape {arr.shape}")
    return np.array(arr, dtype=np.uint8, order="C", copy=True)


def text_metrics(shape: tuple[int, ...]) -> tuple[float, int]:
    """Font scale and stroke thickness for a frame of ``shape`` ``(H, W, ...)``, legible at 200-1080 px."""
    side = min(shape[:2])
    return max(0.35, side / 900), max(1, round(side / 300))


def put_label(
    image: np.ndarray, text: str, org: tuple[int, int], fill_rgb: tuple[int, int, int] | None,
    ink_rgb: tuple[int, int, int] | None = None, metrics: tuple[float, int] | None = None,
) -> int:
    """Text at ``org`` (top-left) on a filled box (``fill_rgb``; ``None``: no box); returns the end column.

    The ink is black or white for contrast with the fill unless ``ink_rgb`` is given.
    """
    scale, thick = metrics or text_metrics(image.shape)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    x, y = org
    if fill_rgb is not None:
        cv2.rectangle(image, (x, y), (x + tw + 4, y + th + base + 4), _bgr(fill_rgb), -1)
        if ink_rgb is None:
            luminance = 0.299 * fill_rgb[0] + 0.587 * fill_rgb[1] + 0.114 * fill_rgb[2]
            ink_rgb = (0, 0, 0) if luminance > 128 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y + th + 2), FONT, scale, _bgr(ink_rgb or BAR_INK), thick, cv2.LINE_AA)
    return x + tw + 4


def lesion_contours(
    mask: np.ndarray | torch.Tensor,
    frame_size: tuple[int, int],
    roi: ScanRegion | None = None,
    threshold: float = MASK_THRESHOLD,
    *,
    input_size: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Outlines of the lesion pixels (:func:`~usvid.boxes.lesion_pixels`) of the mask, in frame pixels (as :func:`mask_to_box` maps boxes).

    Args:
        mask: ``(s, s)`` or ``(1, s, s)`` float in [0, 1], the network's lesion mask over the ROI or frame.
        frame_size: ``(width, height)`` of the frame.
        roi: the scan region the network saw; ``None`` = the whole frame.
        threshold: the predictor's mask threshold, so the outline matches the box.
        input_size: the network's input side ``S`` (default ``32 * s``, right for a stride-32 mask).
    Returns:
        ``(N, 1, 2)`` int32 point arrays for :func:`cv2.drawContours`, one per region; empty: no lesion.
    """
    m = mask.detach().float().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    m = np.ascontiguousarray(m.reshape(m.shape[-2:]), dtype=np.float32)
    if not lesion_pixels(m, threshold).any():
        return ()
    region = roi or full_frame_region(*frame_size)
    up, sx, sy = mask_to_content(m, region.w, region.h, input_size or 32 * m.shape[-1])
    found, _ = cv2.findContours(lesion_pixels(up, threshold).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    scale = np.array([1.0 / sx, 1.0 / sy])
    offset = np.array([region.x, region.y])
    return tuple(np.round(c * scale + offset).astype(np.int32) for c in found)


def deidentify(image: np.ndarray, roi: ScanRegion | None) -> np.ndarray:
    """A copy of ``image`` ``(H, W, 3)`` uint8 with every pixel outside the scan region set to 0.

    The region's mask is used where it has one, else its rectangle; ``roi=None`` (no region known) blanks
    the whole image: nothing outside a known scan region may be shown.
    """
    out = np.zeros_like(image)
    if roi is not None:
        crop = image[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
        inside = out[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
        inside[:] = crop if roi.mask is None else crop * roi.mask[..., None]
    return out


def region_notice(roi: ScanRegion | None, detecting: bool, keep_ui: bool) -> str | None:
    """What the bar says about the scan region: nothing once it is known."""
    if roi is not None:
        return None
    if detecting:
        return "detecting scan region... " + ("(whole frame)" if keep_ui else "(image hidden)")
    return "no scan region: " + ("whole frame" if keep_ui else "image hidden")


def render_prediction(
    frame: np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    probs: np.ndarray | torch.Tensor | Sequence[float],
    box: Box | None,
    *,
    roi: ScanRegion | None = None,
    style: OverlayStyle = OverlayStyle(),
    contours: Sequence[np.ndarray] = (),
    detecting: bool = False,
) -> np.ndarray:
    """The overlay canvas of one frame: the de-identified frame under a label bar (see the module docstring).

    Args:
        frame: grey ``(H, W)`` / ``(1, H, W)`` or ``(H, W, 3)`` BGR uint8, the original frame (not modified).
        class_names: the ``K`` class names.
        probs: ``(K,)`` class probabilities in [0, 1].
        box: lesion box in frame pixels (drawn whatever its size when its score is ``None``), or ``None`` for
            "no lesion".
        roi: the scan region (with its mask, if any); ``None``: none known.
        style: de-identification and thresholds.
        contours: the lesion mask's outlines in frame pixels (:func:`lesion_contours`), drawn with the box.
        detecting: no region yet because detection is still running (the stream's first seconds).
    Returns:
        ``(canvas_height, canvas_width, 3)`` uint8 BGR, sized by :func:`overlay_layout`.
    """
    image = to_bgr(frame)
    height, width = image.shape[:2]
    layout = overlay_layout(width, height)
    canvas = np.zeros((layout.canvas_height, layout.canvas_width, 3), np.uint8)
    canvas[: layout.bar] = _bgr(BAR_FILL)
    shown = image if style.keep_ui else deidentify(image, roi)
    hidden = roi is None and not style.keep_ui  # nothing of the frame is shown: no box on a black area
    if style.keep_ui and roi is not None:
        # One pixel outside the region, so the outline covers no scan pixel.
        cv2.rectangle(shown, (roi.x - 1, roi.y - 1), (roi.x + roi.w, roi.y + roi.h), _bgr(ROI_COLOUR), 1)
    lesion = _draw_lesion(shown, class_names, probs, box, style, contours, hidden)
    layout.frame_part(canvas)[:] = shown
    _draw_bar(canvas, layout, class_names, probs, style, lesion, region_notice(roi, detecting, style.keep_ui))
    return canvas


def _top(class_names: Sequence[str], probs, style: OverlayStyle) -> tuple[str, tuple[int, int, int]]:
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float32)
    index = int(p.argmax())
    name, top = class_names[index], float(p[index])
    if style.is_uncertain(top):
        return f"uncertain ({name} {percent(top)})", UNCERTAIN_COLOUR
    return f"{name} {percent(top)}", class_colour(name, index)


def _draw_lesion(
    image: np.ndarray, class_names, probs, box: Box | None, style: OverlayStyle,
    contours: Sequence[np.ndarray], hidden: bool,
) -> str:
    """Draw box and mask outline on ``image`` in place if the box is shown; returns the bar's lesion text."""
    if box is None:
        return "no lesion"
    score = box.score
    if score is not None and score < style.box_min_score:
        return f"box hidden: score {percent(score)} < {percent(style.box_min_score)}"
    if hidden:
        return "lesion" + ("" if score is None else f" {percent(score)}") + " (not drawn)"
    _, colour = _top(class_names, probs, style)
    x0, y0, x1, y1 = (round(float(v)) for v in box.as_xyxy())
    _, thick = text_metrics(image.shape)
    if contours:
        cv2.drawContours(image, list(contours), -1, _bgr(colour), thick, cv2.LINE_AA)
    cv2.rectangle(image, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), _bgr(colour), thick + 1)
    return "lesion" + ("" if score is None else f" {percent(score)}")


def _draw_bar(
    canvas: np.ndarray, layout: OverlayLayout, class_names, probs, style: OverlayStyle, lesion: str,
    notice: str | None,
) -> None:
    metrics = text_metrics((layout.height, layout.width))
    label, colour = _top(class_names, probs, style)
    end = put_label(canvas, label, (2, layout.line_origin(0)), colour, metrics=metrics)
    put_label(canvas, lesion, (end + 6, layout.line_origin(0)), None, BAR_INK, metrics)
    if notice is not None:
        put_label(canvas, notice, (2, layout.line_origin(1)), None, NOTICE_INK, metrics)
    put_label(canvas, style.legend(), (2, layout.line_origin(2)), None, LEGEND_INK, metrics)


def draw_status(canvas: np.ndarray, text: str, frame_size: tuple[int, int]) -> None:
    """The stream's status ``text`` on the bar's last line of a canvas made for a ``frame_size``
    ``(width, height)`` frame, in place: in the bar, so it covers no image pixel."""
    layout = overlay_layout(*frame_size)
    put_label(canvas, text, (2, layout.line_origin(STATUS_LINE)), None, LEGEND_INK,
              text_metrics((layout.height, layout.width)))
