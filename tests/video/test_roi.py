"""Scan-region detection: synthetic UI videos here, the real clinical clips when ../shared is present."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.clinical import CLINICAL_UI
from usvid.errors import ConfigError, InputError, ProcessingError
from usvid.video.reader import open_video
from usvid.video.roi import (
    ROI_FRAMES,
    ScanRegion,
    detect_scan_region,
    fixed_scan_region,
    full_frame_region,
    scan_region_of,
)
from usvid.video.testvideos import ultrasound_layout


def _grey(path, limit=ROI_FRAMES) -> np.ndarray:
    with open_video(path) as reader:
        frames = []
        for batch in reader.batches(32):
            frames.append(batch.data[:, 0].numpy())
            if sum(len(f) for f in frames) >= limit:
                break
    return np.concatenate(frames)[:limit]


def _kept(region: ScanRegion, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: source pixels that survive crop + blanking."""
    keep = np.zeros(shape, bool)
    keep[region.y : region.y + region.h, region.x : region.x + region.w] = region.mask > 0
    return keep


@pytest.mark.parametrize("via", ["frames", "file"])
def test_synthetic_ultrasound_crop_excludes_ui(video_dir, via):
    frames = _grey(video_dir / "ultrasound.mp4")
    region = detect_scan_region(frames) if via == "frames" else scan_region_of(video_dir / "ultrasound.mp4")
    lay = ultrasound_layout(150, 98)
    sx, sy, sw, sh = lay.scan
    assert region.method == "auto"
    # Holds the whole scan (2 px of blur tolerance) ...
    assert region.x <= sx + 2 and region.y <= sy + 2
    assert region.x + region.w >= sx + sw - 2 and region.y + region.h >= sy + sh - 2
    keep = _kept(region, frames.shape[1:])
    assert keep[sy + 2 : sy + sh - 2, sx + 2 : sx + sw - 2].mean() > 0.99
    # ... and nothing of the text band, the ruler or the logo survives.
    for x, y, w, h in (lay.text_band, lay.ruler, lay.logo):
        assert not keep[y : y + h, x : x + w].any()
    out = region.apply(frames)
    assert out.shape == (len(frames), region.h, region.w) and out.dtype == np.uint8


def test_apply_blanks_outside_the_mask():
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 1
    region = ScanRegion(3, 2, 6, 4, mask)
    frames = np.full((2, 10, 12), 9, np.uint8)
    out = region.apply(frames)
    assert out.shape == (2, 4, 6)
    assert (out[:, 1:3, 2:5] == 9).all() and out.sum() == 2 * 6 * 9


def test_static_video_has_no_scan_region():
    frames = np.repeat(np.random.default_rng(0).integers(0, 255, (1, 40, 60), dtype=np.uint8), 5, axis=0)
    with pytest.raises(ProcessingError, match="--roi"):
        detect_scan_region(frames, source="still.mp4")
    single = detect_scan_region(frames[:1])
    assert single.method == "full" and single.box == (0, 0, 60, 40)


def test_fixed_region_is_checked():
    region = fixed_scan_region((5, 6, 20, 10), width=40, height=30)
    assert region.box == (5, 6, 20, 10) and region.method == "fixed" and not region.blanks
    with pytest.raises(InputError, match="outside the 40x30 frame"):
        fixed_scan_region((30, 6, 20, 10), width=40, height=30)
    with pytest.raises(InputError, match="width and height > 0"):
        fixed_scan_region((0, 0, 0, 10), width=40, height=30)
    full = full_frame_region(7, 5)
    assert full.box == (0, 0, 7, 5) and full.method == "full" and not full.blanks
    with pytest.raises(ConfigError, match="mask must be"):
        ScanRegion(0, 0, 4, 4, np.ones((4, 5), np.uint8))


TOLERANCE = 4  # px: the hand-checked bounds are +-2 px; blur and closing move edges by a few pixels


@pytest.mark.realdata
@pytest.mark.parametrize("clip", sorted(CLINICAL_UI))
def test_clinical_clip_crop_holds_scan_and_no_text(shared_data, clip):
    path = shared_data / "videos" / "clinical-ui" / clip
    frames = _grey(path)
    region = scan_region_of(path)  # what `usvid extract` does (limited-range luma statistics)
    (x0, y0, x1, y1), texts, markers = CLINICAL_UI[clip]
    # The crop holds the whole scan region ...
    assert region.x <= x0 + TOLERANCE and region.y <= y0 + TOLERANCE, region.box
    assert region.x + region.w >= x1 - TOLERANCE and region.y + region.h >= y1 - TOLERANCE, region.box
    keep = _kept(region, frames.shape[1:])
    brightest = frames.max(axis=0)
    # ... and its content: >= 99 % of the non-black pixels of the scan box (less text/markers) are not blanked.
    content = np.zeros_like(keep)
    content[y0:y1, x0:x1] = brightest[y0:y1, x0:x1] > 10
    for bx0, by0, bx1, by1 in texts + markers:
        content[by0:by1, bx0:bx1] = False
    assert (keep & content).sum() >= 0.99 * content.sum()
    # No pixel of burned-in text survives crop + blanking; of a marker at most a 2 % sliver.
    ink = brightest > 40
    for bx0, by0, bx1, by1 in texts:
        assert not (keep & ink)[by0:by1, bx0:bx1].any(), f"text at {(bx0, by0, bx1, by1)} survives"
    for bx0, by0, bx1, by1 in markers:
        marker_ink = ink[by0:by1, bx0:bx1]
        assert (keep[by0:by1, bx0:bx1] & marker_ink).sum() <= 0.02 * marker_ink.sum()


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("clip", "icon", "blanked"), [("BR001", (0, 0, 16, 16), 0.95), ("BR003", (0, 0, 12, 13), 0.7)]
)
def test_frame_folder_vendor_icon_is_blanked(shared_data, clip, icon, blanked):
    frames = _grey(shared_data / "videos" / "breast-usv-frames" / clip)
    region = scan_region_of(shared_data / "videos" / "breast-usv-frames" / clip)
    keep = _kept(region, frames.shape[1:])
    x0, y0, x1, y1 = icon
    # The icon sits on the scan itself: the crop is the whole frame and the icon is blanked by the mask.
    # BR003's icon is 12x13 px and its glyph edges flicker under JPEG re-coding, so part of it moves.
    assert 1.0 - keep[y0:y1, x0:x1].mean() >= blanked
    assert keep.mean() > 0.99
