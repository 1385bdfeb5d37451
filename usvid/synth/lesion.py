"""Lesions whose look follows the BI-RADS descriptors that separate the two classes.

- benign: oval, circumscribed (sharp margin, thin echogenic capsule), wider than tall ("parallel"),
  mildly hypoechoic or anechoic, posterior acoustic enhancement with thin edge shadows;
- malignant: irregular and spiculated, taller than wide ("not parallel"), markedly hypoechoic and
  heterogeneous, an echogenic halo, posterior acoustic shadowing.

A :class:`LesionShape` is in centimetres and belongs to the patient (every video of a patient shows the
same lesion); :func:`render_lesion` draws one cross-section of it into a beam-space view.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

N_ANGLES = 180
_SUBPIXEL_BITS = 4


@dataclass(frozen=True, eq=False)
class LesionShape:
    """A lesion: an ellipse with half axes ``half_width_cm``/``half_height_cm`` whose radius is scaled by
    ``radius (N_ANGLES,) float32`` (1 = on the ellipse) at evenly spaced angles.

    Grey-level effects: ``echo`` inside (negative = hypoechoic), ``heterogeneity`` (spread of the inner
    texture), ``speckle_keep`` (1 = solid, ~0.2 = fluid-filled), ``rim`` (capsule), ``halo``, ``posterior``
    behind it (+ enhancement, - shadow) fading over ``posterior_decay`` of the depth, ``edge_shadow`` at the
    lateral margins, and ``edge_sigma_px`` margin blur.
    """

    label: str
    half_width_cm: float
    half_height_cm: float
    radius: np.ndarray
    echo: float
    heterogeneity: float
    speckle_keep: float
    rim: float
    halo: float
    posterior: float
    posterior_decay: float
    edge_shadow: float
    edge_sigma_px: float


@dataclass(frozen=True, eq=False)
class LesionFrame:
    """Where one rendered cross-section landed: ``mask (h, w) uint8`` (0/255) at beam offset ``(x0, y0)``."""

    mask: np.ndarray
    x0: int
    y0: int

    def box(self) -> tuple[int, int, int, int]:
        """Tight ``(x, y, w, h)`` of the mask in beam coordinates."""
        x, y, w, h = cv2.boundingRect(self.mask)
        return self.x0 + x, self.y0 + y, w, h


def _benign(rng: np.random.Generator) -> LesionShape:
    width_cm = rng.uniform(0.9, 1.7)
    aspect = rng.uniform(1.45, 2.1)  # width / height
    angles = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
    radius = np.ones(N_ANGLES)
    for k in (2, 3):  # gentle macrolobulation keeps the margin circumscribed
        radius += rng.uniform(0.0, 0.04) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    cyst = rng.uniform() < 0.3
    return LesionShape(
        label="benign",
        half_width_cm=width_cm / 2,
        half_height_cm=width_cm / 2 / aspect,
        radius=radius.astype(np.float32),
        echo=-rng.uniform(95, 120) if cyst else -rng.uniform(45, 70),
        heterogeneity=rng.uniform(2, 5) if cyst else rng.uniform(4, 8),
        speckle_keep=0.2 if cyst else 0.85,
        rim=rng.uniform(14, 26),
        halo=0.0,
        posterior=rng.uniform(28, 42) if cyst else rng.uniform(18, 30),
        posterior_decay=rng.uniform(0.5, 0.9),
        edge_shadow=-rng.uniform(25, 40),
        edge_sigma_px=0.7,
    )


def _malignant(rng: np.random.Generator) -> LesionShape:
    height_cm = rng.uniform(0.9, 1.6)
    aspect = rng.uniform(1.3, 1.8)  # height / width
    angles = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
    radius = np.ones(N_ANGLES)
    for k in range(3, 10):  # angular, microlobulated margin
        radius += rng.uniform(0.02, 0.14) / k**0.4 * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    for _ in range(int(rng.integers(7, 14))):  # spicules: thin radial spikes
        centre, width = rng.uniform(0, 2 * np.pi), rng.uniform(0.035, 0.08)
        distance = np.abs((angles - centre + np.pi) % (2 * np.pi) - np.pi)
        radius += rng.uniform(0.2, 0.45) * np.clip(1.0 - distance / width, 0.0, None)
    return LesionShape(
        label="malignant",
        half_width_cm=height_cm / 2 / aspect,
        half_height_cm=height_cm / 2,
        radius=np.clip(radius, 0.55, None).astype(np.float32),
        echo=-rng.uniform(70, 95),
        heterogeneity=rng.uniform(9, 15),
        speckle_keep=0.7,
        rim=0.0,
        halo=rng.uniform(10, 20),
        posterior=-rng.uniform(45, 70),
        posterior_decay=rng.uniform(1.2, 2.0),
        edge_shadow=0.0,
        edge_sigma_px=1.0,
    )


def make_lesion(label: str, rng: np.random.Generator) -> LesionShape:
    """A random lesion of class ``label`` (``benign`` or ``malignant``)."""
    if label == "benign":
        return _benign(rng)
    if label == "malignant":
        return _malignant(rng)
    raise ValueError(f"no lesion for label {label!r}")


def _contour(shape: LesionShape, centre: tuple[float, float], half_axes: tuple[float, float]) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
    xs = centre[0] + half_axes[0] * shape.radius * np.cos(angles)
    ys = centre[1] + half_axes[1] * shape.radius * np.sin(angles)
    return np.stack([xs, ys], axis=1)


def render_lesion(
    view: np.ndarray,
    speckle: np.ndarray,
    texture: np.ndarray,
    shape: LesionShape,
    centre: tuple[float, float],
    half_axes: tuple[float, float],
    min_area: float,
) -> LesionFrame | None:
    """Draw a cross-section into ``view`` in place and return its mask, or None when too little is in view.

    view: ``(beam_h, beam_w) float32`` grey levels; speckle, texture: the same window of the tissue's
    speckle and texture fields. ``centre`` and ``half_axes`` are in beam pixels (the probe's motion and the
    elevational cut already applied). Under ``min_area`` visible pixels the lesion counts as not in view
    and nothing is drawn, so the truth never holds a box for an invisible sliver.
    """
    beam_h, beam_w = view.shape
    points = _contour(shape, centre, half_axes)
    pad = int(np.ceil(3 * max(2.0, 0.15 * half_axes[1]))) + 2
    x0, y0 = (np.floor(points.min(axis=0)).astype(int) - pad).clip(0)
    x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + pad + 1, (beam_w, beam_h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    fixed = np.round((points - (x0, y0)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 255, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    if cv2.countNonZero(mask) < max(12.0, min_area):
        return None
    _paint(view[y0:y1, x0:x1], speckle[y0:y1, x0:x1], texture[y0:y1, x0:x1], mask, shape, half_axes)
    _posterior(view, mask, x0, y0, shape)
    return LesionFrame(mask, int(x0), int(y0))


def _paint(roi, speckle, texture, mask, shape: LesionShape, half_axes) -> None:
    inside = cv2.GaussianBlur(mask.astype(np.float32) * (1 / 255), (0, 0), shape.edge_sigma_px)
    inner = shape.echo + shape.heterogeneity * texture + (shape.speckle_keep - 1.0) * speckle
    roi += inside * inner
    if shape.rim:
        ring = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(np.float32)
        roi += shape.rim / 255 * cv2.GaussianBlur(ring, (0, 0), 0.8)
    if shape.halo:
        spread = cv2.GaussianBlur(inside, (0, 0), max(1.0, 0.12 * half_axes[1]))
        roi += shape.halo * np.clip(spread - inside, 0.0, None) * 2.0


def _posterior(view: np.ndarray, mask: np.ndarray, x0: int, y0: int, shape: LesionShape) -> None:
    """Enhancement or shadow along the beams behind the lesion, fading with depth."""
    beam_h = view.shape[0]
    filled = mask > 0
    columns = filled.any(axis=0)
    if not columns.any():
        return
    bottom = y0 + mask.shape[0] - 1 - np.argmax(filled[::-1], axis=0)
    cover = cv2.GaussianBlur(columns.astype(np.float32)[None, :], (0, 0), 1.2)[0]
    gain = shape.posterior * cover
    if shape.edge_shadow:
        edges = np.abs(np.diff(columns.astype(np.float32), prepend=0.0, append=0.0))
        edges = np.maximum(edges[:-1], edges[1:])
        gain += shape.edge_shadow * cv2.GaussianBlur(edges[None, :], (0, 0), 1.0)[0] * 2.0
    # Beside the lesion (where blurred cover and edge shadows reach) the effect starts at its equator.
    bottom = np.where(columns, bottom, y0 + mask.shape[0] // 2)
    top = int(bottom.min())
    rows = np.arange(top, beam_h, dtype=np.float32)[:, None]
    behind = rows - bottom[None, :]
    fade = np.clip(behind / 3.0, 0.0, 1.0) * np.exp(
        -np.clip(behind, 0, None) / (shape.posterior_decay * beam_h)
    )
    view[top:beam_h, x0 : x0 + mask.shape[1]] += gain[None, :] * fade.astype(np.float32)
