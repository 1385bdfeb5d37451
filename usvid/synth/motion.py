"""Probe motion over a video: the probe slides across the breast, tilts through the elevational plane
and is pressed in and out, so the lesion drifts, grows and shrinks, enters and leaves the view.

The elevational cut is what makes a lesion appear and vanish while it is laterally in view: the image
plane crosses an ellipsoid, whose cross-section has half axes ``scale * (a, b)`` with
``scale = sqrt(1 - e**2)`` at elevational offset ``e`` (in lesion radii).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A plan shows the lesion in this share of its frames, so every lesion video also has lesion-free frames.
VISIBLE_SHARE = (0.4, 0.9)
_MIN_SCALE = 0.3  # a thinner cross-section is hardly visible; counts as absent when planning
_PLAN_TRIES = 40


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Per-frame probe state, all ``(num_frames,)`` arrays.

    ``dx``/``dy`` int: window offset into the tissue world (beam columns/rows); ``scale`` float in [0, 1]:
    the lesion's cross-section (0 = the image plane misses it); ``lesion_xy``: the lesion centre in world
    beam coordinates, None for a lesion-free video.
    """

    dx: np.ndarray
    dy: np.ndarray
    scale: np.ndarray
    lesion_xy: tuple[float, float] | None

    @property
    def num_frames(self) -> int:
        return len(self.dx)


def _wave(rng: np.random.Generator, t: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    return np.sin(2 * np.pi * rng.uniform(low_hz, high_hz) * t + rng.uniform(0, 2 * np.pi))


def _probe(
    rng: np.random.Generator, t: np.ndarray, travel: int, margin_y: int
) -> tuple[np.ndarray, np.ndarray]:
    sweep = 0.5 + 0.32 * _wave(rng, t, 0.06, 0.2) + 0.12 * _wave(rng, t, 0.25, 0.6)
    dx = np.clip(np.round(travel * sweep), 0, travel).astype(np.int64)
    dy = (margin_y + np.round(0.8 * margin_y * _wave(rng, t, 0.2, 0.35))).astype(np.int64)
    return dx, dy


def _visible(dx, scale, lesion_x: float, beam_w: int, half_w: float) -> np.ndarray:
    u = lesion_x - dx
    return (scale >= _MIN_SCALE) & (u > -0.5 * half_w) & (u < beam_w + 0.5 * half_w)


def plan_motion(
    rng: np.random.Generator,
    num_frames: int,
    fps: float,
    beam_size: tuple[int, int],
    travel: int,
    margin_y: int,
    lesion_half_px: tuple[float, float] | None,
) -> Trajectory:
    """Plan the probe's path; with a lesion (half axes in beam pixels) place it so it shows in about
    40-90% of the frames (the plan closest to 65% of a few tries)."""
    t = np.arange(num_frames) / fps
    beam_w, beam_h = beam_size
    if lesion_half_px is None:
        dx, dy = _probe(rng, t, travel, margin_y)
        return Trajectory(dx, dy, np.zeros(num_frames), None)
    best, best_gap = None, np.inf
    for _ in range(_PLAN_TRIES):
        dx, dy = _probe(rng, t, travel, margin_y)
        elevation = rng.uniform(-0.6, 0.6) + rng.uniform(0.5, 1.4) * _wave(rng, t, 0.08, 0.3)
        scale = np.sqrt(np.clip(1.0 - elevation**2, 0.0, 1.0))
        anchor = int(rng.integers(num_frames))
        x = dx[anchor] + rng.uniform(0.25, 0.75) * beam_w
        depth = rng.uniform(0.33, 0.5) * beam_h
        y = margin_y + max(depth, 1.25 * lesion_half_px[1] + 0.1 * beam_h)
        share = _visible(dx, scale, x, beam_w, lesion_half_px[0]).mean()
        gap = abs(share - 0.65)
        if gap < best_gap:
            best, best_gap = Trajectory(dx, dy, scale, (float(x), float(y))), gap
        if VISIBLE_SHARE[0] <= share <= VISIBLE_SHARE[1] and gap < 0.15:
            break
    return best
