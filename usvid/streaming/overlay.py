"""The streaming-only parts of the overlay: the live fps/latency line and the "signal lost" screen.

The prediction itself (de-identified frame, label bar, lesion box and mask outline, "uncertain",
"detecting scan region") is drawn by :mod:`usvid.inference.overlay`, shared with ``usvid predict``;
:func:`render_result` calls it for a :class:`FrameResult`. The status line goes on the bar's last line
(:func:`~usvid.inference.overlay.draw_status`): the pipeline adds it for the window and the browser, and
to recordings only when asked (``record_status``). Images are ``(H, W, 3)`` uint8 BGR canvases.
"""

from __future__ import annotations

import cv2
import numpy as np

from usvid.inference.overlay import OverlayStyle, draw_status, render_prediction
from usvid.streaming.results import FrameResult

FONT = cv2.FONT_HERSHEY_SIMPLEX
LOST_COLOUR = (40, 40, 255)  # BGR red

__all__ = ["draw_signal_lost", "draw_status", "render_result", "status_text"]


def draw_signal_lost(image: np.ndarray, message: str = "SIGNAL LOST") -> np.ndarray:
    """A dimmed copy of the last overlay canvas ``(H, W, 3)`` uint8 BGR with a red banner across the middle.

    Give it the last *rendered* canvas (already de-identified), never the raw captured frame.
    """
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


def render_result(
    result: FrameResult, style: OverlayStyle = OverlayStyle(), detecting: bool = False
) -> np.ndarray:
    """The overlay canvas of one frame result (see :func:`usvid.inference.overlay.render_prediction`).

    ``detecting``: the region is unknown because the detector is still looking (shown as such).
    """
    return render_prediction(
        result.frame.image, result.class_names, result.probs, result.box, roi=result.roi, style=style,
        contours=result.contours, detecting=detecting,
    )
