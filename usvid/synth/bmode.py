"""B-mode tissue: layered breast anatomy, Rayleigh speckle and depth attenuation, in display grey levels.

The tissue is built once per video as a *world* wider (and a little taller) than the view, in beam
space; each frame is a window into it at the probe's position. Precomputing the speckle and shifting
it with the probe is both what real speckle does under lateral motion and what keeps rendering cheap.
Values are grey levels (0..255 before clipping) so that a frame is ``base + speckle`` plus the lesion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Display mapping: grey = GREY_OFFSET + GREY_PER_NEPER * ln(echogenicity)
#                        + SPECKLE_GREY_PER_NEPER * ln(speckle).
# The floored ln Rayleigh speckle spreads about 0.42: +-27 grey levels, as on a scanner's display.
GREY_OFFSET = 118.0
GREY_PER_NEPER = 46.0
SPECKLE_GREY_PER_NEPER = 64.0

# Tissue layers from the skin down (depth fraction of the boundary, ln echogenicity below it).
_LAYERS = (
    (0.035, -1.0),  # subcutaneous fat: dark
    (0.24, 0.5),  # fibroglandular tissue: bright
    (0.66, -0.75),  # retromammary fat
    (0.74, -0.05),  # pectoral muscle
    (0.90, -1.6),  # chest wall: dark
)
_SKIN_ECHO = 0.3  # ln echogenicity above the first boundary (skin + gel)


@dataclass(frozen=True)
class Tissue:
    """A video's tissue in beam space, as ``(world_h, world_w) float32`` grey levels.

    ``base`` holds anatomy and attenuation, ``speckle`` the zero-mean speckle; the view at probe offset
    ``(dx, dy)`` is ``[dy:dy + beam_h, dx:dx + beam_w]`` of each. ``texture`` is a smooth zero-mean field
    with unit spread that lesions use for their inner heterogeneity.
    """

    base: np.ndarray
    speckle: np.ndarray
    texture: np.ndarray
    beam_size: tuple[int, int]
    margin_y: int

    @property
    def travel(self) -> int:
        """How far (beam columns) the probe can slide across the world."""
        return self.base.shape[1] - self.beam_size[0]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """``shape float32`` smooth noise with features about ``cell`` pixels across, unit standard deviation."""
    h, w = shape
    coarse = rng.standard_normal((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2))).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def speckle_field(rng: np.random.Generator, shape: tuple[int, int], grain: float) -> np.ndarray:
    """``shape float32``: ln of a Rayleigh envelope (zero mean, spread ~0.42), grains ``grain`` px wide.

    The envelope is the magnitude of complex Gaussian noise blurred by an anisotropic point-spread
    function, which is what makes fully developed speckle Rayleigh distributed.
    """
    sx, sy = max(0.6, grain), max(0.45, 0.5 * grain)
    re = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), sigmaX=sx, sigmaY=sy)
    im = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), sigmaX=sx, sigmaY=sy)
    power = re * re + im * im
    # The floor stands in for the scanner's noise floor: without it the envelope's zeros show as black cracks.
    log_env = 0.5 * np.log(power + 0.15 * power.mean(), dtype=np.float32)
    return log_env - log_env.mean()


def _anatomy(rng: np.random.Generator, shape: tuple[int, int], beam_h: int, margin_y: int) -> np.ndarray:
    """``shape float32`` ln echogenicity: wavy layers, fat lobules, gland, muscle fibres, ligaments."""
    h, w = shape
    depth = ((np.arange(h, dtype=np.float32) - margin_y) / beam_h)[:, None]
    echo = np.full(shape, _SKIN_ECHO, dtype=np.float32)
    previous = _SKIN_ECHO
    for k, (boundary, value) in enumerate(_LAYERS):
        wave = 0.035 * (1 + k % 2) * smooth_noise(rng, (1, w), cell=w / rng.uniform(2.0, 5.0))
        edge = np.float32(0.006 + 0.004 * k)
        step = 1.0 / (1.0 + np.exp(-(depth - (boundary + wave)) / edge))
        echo += (value - previous) * step
        previous = value
    echo += 1.4 * np.exp(-(((depth - 0.018) / 0.009) ** 2))  # the bright skin line
    echo += 0.35 * smooth_noise(rng, shape, cell=max(3.0, beam_h * 0.05))
    fibres = np.sin(depth * rng.uniform(70.0, 110.0) + 0.6 * smooth_noise(rng, shape, cell=max(4.0, w / 6)))
    echo += 0.25 * fibres * ((depth > 0.76) & (depth < 0.89))
    echo += _ligaments(rng, shape, beam_h, margin_y)
    return echo


def _ligaments(rng: np.random.Generator, shape: tuple[int, int], beam_h: int, margin_y: int) -> np.ndarray:
    """Cooper's ligaments: thin bright arcs between the fat and the gland."""
    h, w = shape
    canvas = np.zeros(shape, dtype=np.float32)
    thickness = max(1, round(beam_h / 200))
    for _ in range(max(2, w // 120)):
        cx, cy = rng.uniform(0, w), margin_y + beam_h * rng.uniform(0.12, 0.28)
        axes = (max(2, int(rng.uniform(0.08, 0.25) * beam_h)), max(1, int(rng.uniform(0.03, 0.08) * beam_h)))
        start = rng.uniform(180, 250)
        cv2.ellipse(
            canvas, (int(cx), int(cy)), axes, rng.uniform(-20, 20), start, start + 110, 1.0, thickness
        )
    return 0.9 * cv2.GaussianBlur(canvas, (0, 0), 0.8)


def attenuation(beam_h: int, rows: int, margin_y: int, rng: np.random.Generator) -> np.ndarray:
    """``(rows, 1) float32`` ln gain per row: attenuation partly undone by time-gain compensation."""
    depth = (np.arange(rows, dtype=np.float32) - margin_y) / beam_h
    slope = rng.uniform(0.7, 1.1)
    return (-slope * depth + 0.15 * np.exp(-depth / 0.1))[:, None].astype(np.float32)


def make_tissue(
    rng: np.random.Generator,
    beam_size: tuple[int, int],
    travel: int,
    margin_y: int,
    lateral_scale: float = 1.0,
) -> Tissue:
    """Build the tissue world for a ``beam_size = (beam_w, beam_h)`` view sliding ``travel`` columns.

    ``lateral_scale`` (frame pixels per beam column, > 1 for a fanned sector) narrows the speckle grain in
    beam space so it looks the same size on screen.
    """
    beam_w, beam_h = beam_size
    shape = (beam_h + 2 * margin_y, beam_w + travel)
    grain = max(0.6, 2.2 * beam_h / 400.0) / lateral_scale
    echo = _anatomy(rng, shape, beam_h, margin_y) + attenuation(beam_h, shape[0], margin_y, rng)
    base = GREY_OFFSET + GREY_PER_NEPER * echo
    speckle = SPECKLE_GREY_PER_NEPER * speckle_field(rng, shape, grain)
    texture = smooth_noise(rng, shape, cell=max(2.0, beam_h * 0.04))
    return Tissue(base.astype(np.float32), speckle.astype(np.float32), texture, beam_size, margin_y)
