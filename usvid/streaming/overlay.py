"""The streaming-only parts of the overlay: the live fps/latency line and the "signal lost" screen.

The prediction itself (lesion box, class and probability coloured by class, "no lesion", scan-region
outline) is drawn by :mod:`usvid.inference.overlay`, shared with ``usvid predict``; :func:`render_result`
adds the stream's status line on top. Images are ``(H, W, 3)`` uint8 BGR.
"""

from __future__ import annotations

import cv2
import numpy as np

from usvid.inference.overlay import put_label, render_prediction, text_metrics
from usvid.inference.postprocess import LesionBox
from usvid.streaming.results import FrameResult

FONT = cv2.FONT_HERSHEY_SIMPLEX
STATUS_FILL = (30, 30, 30)  # RGB, as put_label takes it
LOST_COLOUR = (40, 40, 255)  # BGR red


def draw_status(image: np.ndarray, text: str) -> None:
    """The live fps / latency / dropped line, in place, bottom-right (class labels sit top-left)."""
    scale, thick = text_metrics(image)
    (width, height), base = cv2.getTextSize(text, FONT, scale, thick)
    put_label(image, text, (image.shape[1] - width - 4, image.shape[0] - height - base - 4), STATUS_FILL)


def draw_signal_lost(image: np.ndarray, message: str = "SIGNAL LOST") -> np.ndarray:
    """A dimmed copy of the last frame ``(H, W, 3)`` uint8 BGR with a red banner across the middle."""
    out = (image * 0.4).astype(np.uint8)
    scale = max(0.7, out.shape[0] / 500.0)
    thickness = max(2, round(scale * 2))
    (w, h), baseline = cv2.getTextSize(message, FONT, scale, thickness)
    x, y = max(0, (out.shape[1] - w) // 2), (out.shape[0] + h) // 2
    cv2.rectangle(
        out, (0, y - h - 2 * thickness), (out.shape[1] - 1, y + baseline + 2 * thickness), (0, 0, 0), -1
    )
    cv2.putText(out, message, (x, y), FONT, scale, LOST_COLOUR, thickness, cv2.LINE_AA)
    return out


def status_text(fps: float, p50_ms: float | None, p95_ms: float | None, dropped: int) -> str:
    """``"30.0 fps | 18/24 ms | dropped 3"`` (capture-to-overlay latency p50/p95)."""
    lat = "-- ms" if p50_ms is None or p95_ms is None else f"{p50_ms:.0f}/{p95_ms:.0f} ms"
    return f"{fps:.1f} fps | {lat} | dropped {dropped}"


def render_result(result: FrameResult, status_line: str = "") -> np.ndarray:
    """A new ``(H, W, 3)`` uint8 BGR image: the frame with its (smoothed) prediction, scan region, status."""
    box = None
    if result.box is not None:
        x0, y0, x1, y1 = result.box
        box = LesionBox(
            round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)), result.box_score
        )
    image = render_prediction(result.frame.image, result.class_names, result.probs, box, roi=result.roi)
    if status_line:
        draw_status(image, status_line)
    return image

