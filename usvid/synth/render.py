"""Render and encode one synthetic scan video, returning its per-frame ground truth.

Frames are composed straight into YUV 4:2:0: the chrome's static frame is made once, each frame only
rewrites the scan region's luma (grey B-mode has neutral chroma) and the clock. The file is written by
:class:`usvid.video.writer.VideoWriter` (libx264, yuv420p, one encoder thread so the bitstream is the same
on every machine) under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from usvid.boxes import Box
from usvid.io import atomic_path
from usvid.synth.bmode import make_tissue
from usvid.synth.chrome import draw_chrome
from usvid.synth.config import SynthConfig
from usvid.synth.lesion import LesionFrame, LesionShape, make_lesion, render_lesion
from usvid.synth.motion import plan_motion
from usvid.synth.scan import ScanShape, make_geometry, to_region
from usvid.video.writer import VideoWriter

logger = logging.getLogger(__name__)

#: ``(x, y, w, h)`` whole frame pixels of a part of the picture (the scan, the patient field); lesions are Box.
RegionRect = tuple[int, int, int, int]


@dataclass(frozen=True)
class VideoSpec:
    """Everything that decides one video's pixels. ``seed`` seeds this video alone, so adding patients to a
    dataset does not change the videos already in it."""

    video_id: str
    label: str
    width: int
    height: int
    frame_rate: Fraction
    num_frames: int
    scan_shape: ScanShape
    seed: tuple[int, ...]
    lesion: LesionShape | None = field(default=None, compare=False)
    crf: int = 23
    preset: str = "ultrafast"


@dataclass(frozen=True)
class VideoTruth:
    """What was drawn: the scan region, the patient-name field and the lesion box of every frame.

    ``boxes``: per frame, the tight box in frame pixels (whole pixels, int values, so the files keep writing
    integers) around the lesion's visible pixels, None where no lesion shows. ``scan_region`` is the bounding
    rectangle of the image (for a sector, of the fan), ``phi_region`` that of the patient-name field.
    """

    width: int
    height: int
    fps: float
    num_frames: int
    scan_shape: ScanShape
    scan_region: RegionRect
    phi_region: RegionRect
    boxes: tuple[Box | None, ...]

    @property
    def lesion_frames(self) -> list[int]:
        return [i for i, b in enumerate(self.boxes) if b is not None]

    def to_json(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "scan_shape": self.scan_shape,
            "scan_region": list(self.scan_region),
            "phi_region": list(self.phi_region),
            "boxes": [None if b is None else [b.x, b.y, b.w, b.h] for b in self.boxes],
        }


class _Scene:
    """A video's precomputed parts: geometry, chrome, tissue world and probe path."""

    def __init__(self, spec: VideoSpec) -> None:
        geo_ss, chrome_ss, tissue_ss, motion_ss = np.random.SeedSequence(list(spec.seed)).spawn(4)
        self.geometry = make_geometry(spec.width, spec.height, spec.scan_shape, np.random.default_rng(geo_ss))
        self.chrome = draw_chrome(spec.width, spec.height, self.geometry, np.random.default_rng(chrome_ss))
        beam_w, beam_h = self.geometry.beam_size
        self.mid_lateral = self.geometry.lateral_scale(0.45 * beam_h)
        self.margin_y = max(1, round(0.015 * beam_h))
        self.tissue = make_tissue(
            np.random.default_rng(tissue_ss), (beam_w, beam_h), beam_w, self.margin_y, self.mid_lateral
        )
        self.lesion = spec.lesion
        self.half_px = None if spec.lesion is None else self._half_axes_px(spec.lesion)
        self.path = plan_motion(
            np.random.default_rng(motion_ss),
            spec.num_frames,
            float(spec.frame_rate),
            (beam_w, beam_h),
            self.tissue.travel,
            self.margin_y,
            None if self.half_px is None else (self.half_px[0] / self.mid_lateral, self.half_px[1]),
        )
        self.maps = self.geometry.beam_maps()

    def _half_axes_px(self, lesion: LesionShape) -> tuple[float, float]:
        """Lesion half axes in frame pixels (width) and beam rows (height)."""
        px_per_cm = self.geometry.region[3] * self.geometry.axial_scale / self.geometry.depth_cm
        return lesion.half_width_cm * px_per_cm, lesion.half_height_cm * px_per_cm / self.geometry.axial_scale

    def beam_frame(self, index: int) -> tuple[np.ndarray, LesionFrame | None]:
        """Frame ``index`` in beam space: ``(beam_h, beam_w) uint8`` limited-range luma, and the lesion."""
        beam_w, beam_h = self.geometry.beam_size
        dx, dy = int(self.path.dx[index]), int(self.path.dy[index])
        window = (slice(dy, dy + beam_h), slice(dx, dx + beam_w))
        view = cv2.add(self.tissue.base[window], self.tissue.speckle[window])
        drawn = None
        scale = float(self.path.scale[index])
        if self.lesion is not None and scale > 0.0:
            x, y = self.path.lesion_xy
            centre_v = y - dy
            lateral = self.geometry.lateral_scale(centre_v)
            half = (scale * self.half_px[0] / lateral, scale * self.half_px[1])
            # A lesion showing under 8% of its largest cross-section counts as out of view.
            full_area = np.pi * self.half_px[0] / lateral * self.half_px[1]
            drawn = render_lesion(
                view,
                self.tissue.speckle[window],
                self.tissue.texture[window],
                self.lesion,
                (x - dx, centre_v),
                half,
                0.08 * full_area,
            )
        np.clip(view, 0.0, 255.0, out=view)
        return cv2.convertScaleAbs(view, alpha=219 / 255, beta=16), drawn

    def region_frame(self, index: int) -> tuple[np.ndarray, Box | None]:
        """Frame ``index`` scan-converted into the region: ``(h, w) uint8`` luma and the lesion box (frame pixels)."""
        luma, drawn = self.beam_frame(index)
        x0, y0 = self.geometry.region[:2]
        if drawn is None:
            return to_region(luma, self.maps, (16,)), None
        if self.maps is None:
            bx, by, bw, bh = drawn.box()
            return luma, Box(x0 + bx, y0 + by, bw, bh)
        mask = np.zeros_like(luma)
        mask[drawn.y0 : drawn.y0 + drawn.mask.shape[0], drawn.x0 : drawn.x0 + drawn.mask.shape[1]] = (
            drawn.mask
        )
        both = to_region(np.dstack([luma, mask]), self.maps, (16, 0))
        bx, by, bw, bh = cv2.boundingRect((both[..., 1] > 127).astype(np.uint8))
        box = Box(x0 + bx, y0 + by, bw, bh) if bw > 0 and bh > 0 else None
        return np.ascontiguousarray(both[..., 0]), box


def render_video(
    spec: VideoSpec, path: str | Path, on_frame: Callable[[int], None] | None = None
) -> VideoTruth:
    """Render ``spec`` to an H.264 ``.mp4`` at ``path`` (atomically) and return its ground truth.

    ``on_frame(index)`` is called after each encoded frame (for progress bars).
    """
    with atomic_path(path) as tmp:
        truth = encode_video(spec, tmp, on_frame)
    logger.debug("wrote %s (%d frames, lesion in %d)", path, spec.num_frames, len(truth.lesion_frames))
    return truth


def encode_video(
    spec: VideoSpec, path: str | Path, on_frame: Callable[[int], None] | None = None
) -> VideoTruth:
    """Render ``spec`` straight into ``path`` (the caller makes the write atomic); return its ground truth."""
    scene = _Scene(spec)
    x, y, w, h = scene.geometry.region
    buffer = scene.chrome.i420.copy()
    luma = buffer[: spec.height]
    boxes: list[Box | None] = []
    last_second = None
    # One-second GOPs keep seeking cheap for extraction; one thread keeps the bitstream the same everywhere.
    with VideoWriter(path, spec.frame_rate, spec.width, spec.height, crf=spec.crf, preset=spec.preset,
                     gop=max(1, round(float(spec.frame_rate))), threads=1, container_format="mp4",
                     atomic=False) as writer:
        for index in range(spec.num_frames):
            luma[y : y + h, x : x + w], box = scene.region_frame(index)
            second = int(index / spec.frame_rate)
            if second != last_second:
                scene.chrome.draw_clock(luma, float(second))
                last_second = second
            boxes.append(box)
            writer.write(buffer, pts=index, format="yuv420p")
            if on_frame is not None:
                on_frame(index)
    return VideoTruth(
        spec.width,
        spec.height,
        float(spec.frame_rate),
        spec.num_frames,
        spec.scan_shape,
        scene.geometry.region,
        scene.chrome.phi_region,
        tuple(boxes),
    )


def write_scan_video(
    path: str | Path,
    *,
    label: str = "benign",
    seconds: float = 1.0,
    width: int = 98,
    height: int = 66,
    fps: float = 30.0,
    seed: int = 0,
    scan_shape: ScanShape = "linear",
) -> VideoTruth:
    """Write one synthetic scan video (``benign``, ``malignant`` or lesion-free ``normal``); return its truth.

    A quick fixture for other tests: ``write_scan_video(tmp_path / "a.mp4", seconds=1, width=98, height=66)``.
    Sizes and rates are validated like :class:`SynthConfig` (even sizes, fps > 0).
    """
    from usvid.errors import unknown_name

    config = SynthConfig(patients=1, seconds=seconds, width=width, height=height, fps=fps, seed=seed)
    if label not in ("benign", "malignant", "normal"):
        raise unknown_name("label", label, ("benign", "malignant", "normal"))
    if scan_shape not in ("linear", "sector"):
        raise unknown_name("scan shape", scan_shape, ("linear", "sector"))
    lesion_ss, video_ss = np.random.SeedSequence([seed, 7]).spawn(2)
    lesion = None if label == "normal" else make_lesion(label, np.random.default_rng(lesion_ss))
    spec = VideoSpec(
        Path(path).stem,
        label,
        width,
        height,
        config.frame_rate,
        config.num_frames,
        scan_shape,
        tuple(int(v) for v in video_ss.generate_state(4)),
        lesion,
        config.crf,
        config.preset,
    )
    return render_video(spec, path)
