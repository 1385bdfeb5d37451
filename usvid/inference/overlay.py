"""Draw a prediction on the original frame: lesion box, class, probability, colour by class.

Shared by ``usvid predict`` (overlay videos) and ``usvid stream`` (live view). Images are OpenCV-style
``(H, W, 3)`` uint8 **BGR** numpy arrays; :func:`to_bgr` turns decoded grey frames into that.
:func:`draw_prediction` draws in place; :func:`render_prediction` returns a new image with the
"no lesion" state and an optional scan-region outline as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from usvid.inference.postprocess import LesionBox, Roi

FONT = cv2.FONT_HERSHEY_SIMPLEX
# RGB. Fixed colours for the class names the paper uses; other names take the palette by class index.
NAMED_COLOURS = {"benign": (40, 200, 80), "malignant": (235, 50, 50), "normal": (70, 140, 255)}
PALETTE = ((255, 190, 0), (200, 80, 255), (0, 210, 210), (255, 120, 40), (150, 150, 150))
NO_LESION_COLOUR = (200, 200, 200)
ROI_COLOUR = (0, 200, 255)

Box = LesionBox | tuple[float, float, float, float]


def class_colour(name: str, index: int) -> tuple[int, int, int]:
    """RGB colour for a class: fixed for benign / malignant / normal, else by ``index`` from a palette."""
    return NAMED_COLOURS.get(name.lower(), PALETTE[index % len(PALETTE)])


def _bgr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (rgb[2], rgb[1], rgb[0])


def to_bgr(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    """Grey ``(H, W)`` / ``(1, H, W)`` or colour ``(H, W, 3)`` uint8 -> a new contiguous ``(H, W, 3)`` uint8 BGR."""
    arr = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(arr, dtype=np.uint8), cv2.COLOR_GRAY2BGR)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"frame must be (H, W), (1, H, W) or (H, W, 3) uint8, got shape {arr.shape}")
    return np.array(arr, dtype=np.uint8, order="C", copy=True)


def text_metrics(image: np.ndarray) -> tuple[float, int]:
    """Font scale and stroke thickness that stay legible from 200 px to 1080 px frames."""
    scale = max(0.35, min(image.shape[:2]) / 900)
    return scale, max(1, round(min(image.shape[:2]) / 300))


def put_label(image: np.ndarray, text: str, org: tuple[int, int], fill_rgb: tuple[int, int, int]) -> int:
    """Text on a filled box at ``org`` (top-left, clamped inside the image); returns the box height."""
    scale, thick = text_metrics(image)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    h, w = image.shape[:2]
    x = min(max(org[0], 0), max(w - tw - 4, 0))
    y = min(max(org[1], 0), max(h - th - base - 4, 0))
    cv2.rectangle(image, (x, y), (x + tw + 4, y + th + base + 4), _bgr(fill_rgb), -1)
    luminance = 0.299 * fill_rgb[0] + 0.587 * fill_rgb[1] + 0.114 * fill_rgb[2]
    ink = (0, 0, 0) if luminance > 128 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y + th + 2), FONT, scale, ink, thick, cv2.LINE_AA)
    return th + base + 4


def draw_prediction(
    image: np.ndarray,
    class_names: Sequence[str],
    probs: np.ndarray | torch.Tensor | Sequence[float],
    box: Box | None,
    box_score: float | None = None,
) -> None:
    """Draw the top class, its probability and the lesion box on ``image`` in place.

    Args:
        image: ``(H, W, 3)`` uint8 BGR, the original frame.
        class_names: the ``K`` class names.
        probs: ``(K,)`` class probabilities in [0, 1].
        box: lesion box in frame pixels (a :class:`LesionBox` or ``(x0, y0, x1, y1)``), or ``None``.
        box_score: the box's score in [0, 1] (defaults to ``box.score`` for a :class:`LesionBox`).
    """
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float32)
    index = int(p.argmax())
    name = class_names[index]
    colour = class_colour(name, index)
    text = f"{name} {float(p[index]):.0%}"
    if box is None:
        put_label(image, text, (4, 4), colour)
        return
    if isinstance(box, LesionBox):
        box_score = box.score if box_score is None else box_score
        box = box.as_xyxy()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    _, thick = text_metrics(image)
    cv2.rectangle(image, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), _bgr(colour), thick + 1)
    if box_score is not None:
        text += f" | lesion {box_score:.2f}"
    scale, thick = text_metrics(image)
    label_h = cv2.getTextSize(text, FONT, scale, thick)[0][1] + 12
    # above the box when there is room, else just inside its top edge
    put_label(image, text, (x0, y0 - label_h if y0 >= label_h else y0 + thick + 2), colour)


def render_prediction(
    frame: np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    probs: np.ndarray | torch.Tensor | Sequence[float],
    box: LesionBox | None,
    *,
    roi: Roi | None = None,
) -> np.ndarray:
    """A new ``(H, W, 3)`` uint8 BGR copy of ``frame`` with the prediction, "no lesion" and ROI outline drawn."""
    image = to_bgr(frame)
    if roi is not None:
        cv2.rectangle(image, (roi.x, roi.y), (roi.x + roi.w - 1, roi.y + roi.h - 1), _bgr(ROI_COLOUR), 1)
    draw_prediction(image, class_names, probs, box)
    if box is None:
        scale, thick = text_metrics(image)
        below = cv2.getTextSize("Ag", FONT, scale, thick)[0][1] + 14
        put_label(image, "no lesion", (4, 4 + below), NO_LESION_COLOUR)
    return image
