"""Vendor-style screen furniture around the scan region, as on a recorded scanner display.

A top bar with a fake patient name and date (:data:`PHI_TEXT`, burned into the pixels as on real
recordings; de-identification by cropping must remove it) and a running clock, a parameter panel, a
depth ruler with a focal-zone marker, an orientation mark, a body marker and a grey-scale bar. Nothing is
drawn inside the scan region. The static part is kept as a ready YUV 4:2:0 frame; only the clock changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from usvid.synth.scan import ScanGeometry, top_bar_height

PHI_TEXT = "PATIENT: DOE^JANE  2026-01-01"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PHI_RGB = (235, 235, 235)
_TEXT_RGB = (170, 215, 245)
_RULER_RGB = (205, 205, 205)
_FOCUS_RGB = (250, 215, 0)
_MARK_RGB = (60, 200, 120)
_CLOCK_GREY = 200


def _limited(grey: int) -> int:
    """Full-range grey -> limited-range (BT.601) luma, as H.264 stores it."""
    return int(round(16 + grey * 219 / 255))


def _font_scale(text_height: float) -> float:
    (_, h), _ = cv2.getTextSize("Ag", _FONT, 1.0, 1)
    return max(0.1, text_height / h)


@dataclass(frozen=True, eq=False)
class Chrome:
    """The static screen: ``i420 (height * 3 // 2, width) uint8`` (Y plane, then U and V), black in the scan
    region. ``phi_region`` and ``clock_region`` are ``(x, y, w, h)`` frame pixels of the patient field
    and the clock; ``clock_start`` is the clock's time of day in seconds at frame 0."""

    i420: np.ndarray
    phi_region: tuple[int, int, int, int]
    clock_region: tuple[int, int, int, int]
    clock_start: float
    clock_scale: float

    def draw_clock(self, y_plane: np.ndarray, seconds: float) -> None:
        """Write the clock for ``seconds`` into ``y_plane (H, W) uint8`` (limited-range luma) in place."""
        x, y, w, h = self.clock_region
        stamp = int(self.clock_start + seconds) % 86400
        text = f"{stamp // 3600:02d}:{stamp // 60 % 60:02d}:{stamp % 60:02d}"
        box = y_plane[y : y + h, x : x + w]
        box[:] = 16
        (_, text_h), _ = cv2.getTextSize(text, _FONT, self.clock_scale, 1)
        cv2.putText(
            box, text, (0, text_h + 1), _FONT, self.clock_scale, _limited(_CLOCK_GREY), 1, cv2.LINE_AA
        )


def _text(
    canvas: np.ndarray, text: str, org: tuple[int, int], scale: float, rgb
) -> tuple[int, int, int, int]:
    """Draw ``text`` with its baseline at ``org``; return its box clipped to the canvas."""
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.putText(canvas, text, org, _FONT, scale, rgb, 1, cv2.LINE_AA)
    x0, y0 = max(0, org[0]), max(0, org[1] - h - 1)
    x1, y1 = min(canvas.shape[1], org[0] + w + 1), min(canvas.shape[0], org[1] + base + 1)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def _ruler(canvas: np.ndarray, geometry: ScanGeometry, scale: float, rng: np.random.Generator) -> None:
    x, y, w, h = geometry.region
    width = canvas.shape[1]
    gap = max(2, round(0.012 * width))
    rx = min(width - 2, x + w + gap)
    tick = max(2, round(0.008 * width))
    top, bottom = round(geometry.depth_to_y(0.0)), round(geometry.depth_to_y(1.0))
    cv2.line(canvas, (rx, top), (rx, bottom), _RULER_RGB, 1)
    steps = int(geometry.depth_cm * 2)
    for k in range(steps + 1):
        ty = round(geometry.depth_to_y(k * 0.5 / geometry.depth_cm))
        cv2.line(canvas, (rx, ty), (rx + (tick if k % 2 == 0 else tick // 2), ty), _RULER_RGB, 1)
        if k % 2 == 0 and k > 0:
            _text(canvas, str(k // 2), (rx + tick + 2, ty + 3), scale, _RULER_RGB)
    fy = round(geometry.depth_to_y(rng.uniform(0.35, 0.6)))
    s = max(2, tick)
    triangle = np.array(
        [[rx - 1, fy], [rx - 1 - s, fy - s // 2 - 1], [rx - 1 - s, fy + s // 2 + 1]], np.int32
    )
    if rx - 1 - s >= x + w + 1:
        cv2.fillPoly(canvas, [triangle], _FOCUS_RGB)


def _panel(
    canvas: np.ndarray, geometry: ScanGeometry, scale: float, line: int, rng: np.random.Generator
) -> None:
    """Acquisition parameters down the left, a body marker below them, a grey bar on the right."""
    height, width = canvas.shape[:2]
    left = max(1, round(0.012 * width))
    lines = [
        "SYNTH-US",
        f"L{int(rng.integers(10, 16))}-5 Breast",
        "B",
        f"Frq {rng.uniform(10, 14):.1f}",
        f"Gn {int(rng.integers(40, 70))}",
        f"D {geometry.depth_cm:.1f} cm",
        f"DR {int(rng.integers(60, 78))}",
    ]
    y = top_bar_height(height) + line
    panel = canvas[:, : max(2, geometry.region[0] - 2)]
    for text in lines:
        if y > 0.7 * height:
            break
        _text(panel, text, (left, y), scale, _TEXT_RGB)
        y += line
    r = max(2, round(0.035 * height))
    centre = (min(panel.shape[1] - 1, left + 2 * r), height - 2 * r)
    cv2.circle(panel, centre, r, _TEXT_RGB, 1, cv2.LINE_AA)
    probe = centre[0] + int(rng.uniform(-0.5, 0.5) * r)
    cv2.line(panel, (probe - r // 2, centre[1] - r // 3), (probe + r // 2, centre[1] + r // 3), _FOCUS_RGB, 2)
    bar_x0, bar_x1 = round(0.93 * width), round(0.95 * width)
    ramp = np.linspace(255, 0, int(0.5 * height), dtype=np.float32).astype(np.uint8)
    y0 = round(0.25 * height)
    if bar_x0 > geometry.region[0] + geometry.region[2] + 0.06 * width:
        canvas[y0 : y0 + len(ramp), bar_x0:bar_x1] = ramp[:, None, None]
    x, y, _, _ = geometry.region
    mark = max(1, round(0.006 * width))
    cv2.circle(canvas, (max(mark, x - 3 * mark), y + 2 * mark), mark, _MARK_RGB, -1, cv2.LINE_AA)


def draw_chrome(width: int, height: int, geometry: ScanGeometry, rng: np.random.Generator) -> Chrome:
    """Render the static screen around ``geometry``'s scan region."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    bar = top_bar_height(height)
    big, small = _font_scale(0.45 * bar), _font_scale(0.32 * bar)
    top_bar = canvas[:bar]  # drawing into the bar's view keeps the text out of the scan region
    phi = _text(top_bar, PHI_TEXT, (max(1, round(0.012 * width)), round(0.72 * bar)), big, _PHI_RGB)
    (clock_w, clock_h), descent = cv2.getTextSize("00:00:00", _FONT, big, 1)
    clock_x = max(phi[0] + phi[2] + 2, width - clock_w - max(2, round(0.02 * width)))
    clock_y = max(0, round(0.72 * bar) - clock_h - 1)
    clock = (
        clock_x,
        clock_y,
        max(0, min(clock_w + 2, width - clock_x)),
        min(bar - clock_y, clock_h + 1 + descent),
    )
    _panel(canvas, geometry, small, max(4, round(0.055 * height)), rng)
    _ruler(canvas, geometry, small, rng)
    x, y, w, h = geometry.region
    canvas[y : y + h, x : x + w] = 0
    i420 = cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420)
    return Chrome(i420, phi, clock, float(rng.uniform(8, 17) * 3600), big)
