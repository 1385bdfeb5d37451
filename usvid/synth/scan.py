"""Scan-region geometry: where the B-mode image sits in the frame, and beam space -> frame pixels.

Everything acoustic is rendered in *beam space*, a ``(beam_h, beam_w)`` grid whose columns are beams and
whose rows are depth. A linear probe shows beam space as it is; a sector (convex) probe fans the beams
out from an apex above the image, so posterior shadows and enhancement still run along the beams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

ScanShape = Literal["linear", "sector"]


def _even(v: float) -> int:
    return int(round(v / 2.0)) * 2


@dataclass(frozen=True)
class ScanGeometry:
    """A scan region ``region = (x, y, w, h)`` (frame pixels, even-aligned) and how beams map into it.

    For a sector, ``apex`` is the fan's apex in frame pixels, ``r0``/``r1`` the near/far radii and
    ``half_angle`` half the fan's opening in radians; the fan's bounding box is ``region``.
    ``depth_cm`` is the displayed imaging depth (the ruler's scale).
    """

    shape: ScanShape
    region: tuple[int, int, int, int]
    depth_cm: float
    apex: tuple[float, float] = (0.0, 0.0)
    r0: float = 0.0
    r1: float = 0.0
    half_angle: float = 0.0

    @property
    def beam_size(self) -> tuple[int, int]:
        """``(beam_w, beam_h)``: beams across, samples along each beam."""
        return self.region[2], self.region[3]

    def lateral_scale(self, depth: float) -> float:
        """Frame pixels per beam column at beam row ``depth`` (the fan widens with depth)."""
        if self.shape == "linear":
            return 1.0
        radius = self.r0 + (depth + 0.5) / self.region[3] * (self.r1 - self.r0)
        return radius * 2.0 * self.half_angle / self.region[2]

    @property
    def axial_scale(self) -> float:
        """Frame pixels per beam row."""
        return 1.0 if self.shape == "linear" else (self.r1 - self.r0) / self.region[3]

    def depth_to_y(self, fraction: float) -> float:
        """Frame row of the point at ``fraction`` (0 = skin, 1 = deepest) of the depth on the centre beam."""
        x, y, w, h = self.region
        if self.shape == "linear":
            return y + fraction * h
        return self.apex[1] + self.r0 + fraction * (self.r1 - self.r0)

    def beam_maps(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``cv2.remap`` maps ``(h, w) float32`` from region pixels to beam coordinates; None for linear.

        Pixels outside the fan map far outside beam space, so remapping paints them with the border value.
        """
        if self.shape == "linear":
            return None
        x, y, w, h = self.region
        cols = np.arange(w, dtype=np.float32) + (x - self.apex[0])
        rows = np.arange(h, dtype=np.float32) + (y - self.apex[1])
        dx, dy = np.meshgrid(cols, rows)
        radius = np.hypot(dx, dy)
        theta = np.arctan2(dx, dy)
        map_x = (theta + self.half_angle) / (2.0 * self.half_angle) * w - 0.5
        map_y = (radius - self.r0) / (self.r1 - self.r0) * h - 0.5
        outside = (np.abs(theta) > self.half_angle) | (radius < self.r0) | (radius > self.r1)
        map_x[outside] = -10.0
        map_y[outside] = -10.0
        return map_x.astype(np.float32), map_y.astype(np.float32)

    def fan_mask(self) -> np.ndarray:
        """``(h, w) bool``: region pixels that show tissue (all of them for a linear probe)."""
        maps = self.beam_maps()
        if maps is None:
            return np.ones((self.region[3], self.region[2]), dtype=bool)
        return maps[0] > -1.0


def top_bar_height(height: int) -> int:
    """Rows of the vendor's top bar (patient field, clock) above everything else."""
    return max(6, round(0.075 * height))


def region_budget(width: int, height: int) -> tuple[int, int, int, int]:
    """The part of the frame the scan region may use; the vendor chrome takes the rest."""
    top = _even(top_bar_height(height) + max(2, round(0.025 * height)) + 1)
    bottom = height - max(3, round(0.04 * height))
    left, right = round(0.20 * width), round(0.80 * width)
    return _even(left), top, _even(right - left), _even(bottom - top) - 2


def make_geometry(width: int, height: int, shape: ScanShape, rng: np.random.Generator) -> ScanGeometry:
    """Place a linear or sector scan region inside the frame, jittered a little per video."""
    bx, by, bw, bh = region_budget(width, height)
    depth_cm = float(rng.uniform(3.5, 5.0))
    shrink = rng.uniform(0.0, 0.08)
    if shape == "linear":
        w = _even(bw * (1.0 - shrink))
        x = bx + _even((bw - w) * rng.uniform(0.0, 1.0))
        return ScanGeometry("linear", (x, by, w, bh), depth_cm)
    half = math.radians(rng.uniform(28.0, 38.0))
    rho = rng.uniform(0.15, 0.35)
    # Fan height for the budget's height, shrunk when the fan it implies is wider than the budget.
    fan_w = 2.0 * bh * (1.0 + rho * math.cos(half)) * math.sin(half)
    h = int(bh * min(1.0, bw * (1.0 - shrink) / fan_w)) // 2 * 2
    r0 = rho * h
    r1 = h + r0 * math.cos(half)
    w = int(math.ceil(r1 * math.sin(half))) * 2
    x = bx + _even((bw - w) / 2.0)
    apex = (x + (w - 1) / 2.0, by - r0 * math.cos(half))
    return ScanGeometry("sector", (x, by, w, h), depth_cm, apex, r0, r1, half)


def to_region(beam: np.ndarray, maps, border: tuple[int, ...]) -> np.ndarray:
    """Scan-convert ``beam (beam_h, beam_w[, C]) uint8`` into the region ``(h, w[, C]) uint8`` with the
    :meth:`ScanGeometry.beam_maps` (None: a linear probe, nothing to convert)."""
    if maps is None:
        return beam
    return cv2.remap(
        beam, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )
