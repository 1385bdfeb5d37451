"""Letterbox geometry and the store reader's checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from usvid.boxes import Box
from usvid.data.extract.records import FrameRow
from usvid.data.items import SourceItem
from usvid.data.store import FrameStore, Letterbox, format_boxes, parse_boxes, stored_corners
from usvid.errors import InputError


@pytest.mark.parametrize(("w", "h"), [(150, 98), (60, 117), (64, 64)])
def test_letterbox_maps_boxes_and_masks_like_frames(w, h):
    lb = Letterbox(w, h, 64)
    nw, nh = lb.scaled
    assert max(nw, nh) == 64 and abs(nw / nh - w / h) < 0.05
    crop = np.zeros((1, h, w), np.uint8)
    crop[0, 20:40, 10:30] = 255  # a bright lesion at x 10..30, y 20..40
    frame = lb.frames(crop)[0]
    stored = lb.box((10, 20, 30, 40))
    x0, y0, x1, y1 = stored.as_xyxy()
    ys, xs = np.nonzero(frame > 127)
    assert abs(xs.min() - x0) <= 1 and abs(xs.max() + 1 - x1) <= 1
    assert abs(ys.min() - y0) <= 1 and abs(ys.max() + 1 - y1) <= 1
    mask = np.zeros((h, w), np.uint8)
    mask[20:40, 10:30] = 1
    stored_mask = lb.mask(mask)
    assert set(np.unique(stored_mask)) == {0, 255}
    assert ((stored_mask > 0) == (frame > 127)).mean() > 0.98
    filled = lb.boxes_mask([stored])
    assert ((filled > 0) & (stored_mask > 0)).sum() >= 0.95 * (stored_mask > 0).sum()
    # Padding is black and centred.
    ox, oy = lb.offset
    assert (frame[:oy] == 0).all() and (frame[:, :ox] == 0).all()
    assert abs((64 - nw - ox) - ox) <= 1 and abs((64 - nh - oy) - oy) <= 1


def test_stored_boxes_keep_their_corners_to_the_byte():
    # frames.csv holds corners; a Box holds x and w, and in floats x + w can miss the corner by an ulp.
    box, other = Box.from_xyxy(0.07, 0.14, 0.6, 1.32), Box.from_xyxy(1, 2, 3.5, 4)
    assert box.as_xyxy()[2] != 0.6 and box.as_xyxy()[3] != 1.32
    assert stored_corners(box) == (0.07, 0.14, 0.6, 1.32)
    assert format_boxes([box, other]) == "0.07 0.14 0.6 1.32|1 2 3.5 4"
    assert parse_boxes("0.07 0.14 0.6 1.32|1 2 3.5 4") == (box, other)
    item = SourceItem("v", "p", "benign", Path("v.mp4"), "v.mp4")
    row = FrameRow(item, "train", 3, 0.1, 0, True, (box, other)).to_row()
    assert [row[k] for k in ("x0", "y0", "x1", "y1")] == [0.07, 0.14, 3.5, 4.0]
    assert str(FrameRow(item, "train", 3, 0.1, 0, True, (box,)).to_row()["x1"]) == "0.6"
    with pytest.raises(InputError, match="not four corners"):
        parse_boxes("1 2 3")


def test_store_rejects_missing_and_incompatible(tmp_path):
    with pytest.raises(InputError, match="not a finished frame store"):
        FrameStore(tmp_path)
    (tmp_path / "store.json").write_text(
        json.dumps({"format": "usvid-store", "version": 99, "size": 64, "labels": []})
    )
    with pytest.raises(InputError, match="version 99"):
        FrameStore(tmp_path)
    (tmp_path / "store.json").write_text(
        json.dumps({"format": "usvid-store", "version": 1, "size": 64, "labels": []})
    )
    with pytest.raises(InputError, match="videos.csv: missing"):
        FrameStore(tmp_path)
    (tmp_path / "store.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        FrameStore(tmp_path)


@pytest.mark.parametrize(("w", "h", "size"), [(150, 98, 64), (37, 53, 96), (501, 427, 64)])
def test_clean_mask_lets_nothing_outside_the_scan_bleed_in(w, h, size):
    rng = np.random.default_rng(0)
    mask = np.zeros((h, w), np.uint8)
    cv_poly = np.array([[w // 2, 2], [w - 3, h - 3], [2, h - 3]])  # a sector-like triangle
    import cv2

    cv2.fillPoly(mask, [cv_poly], 1)
    lb = Letterbox(w, h, size)
    clean = lb.clean(mask)
    # Bright "text" everywhere outside the scan, black scan: nothing bright may survive.
    crop = np.where(mask > 0, 0, 255).astype(np.uint8)[None]
    assert (lb.frames(crop) * clean).max() == 0
    # And the scan itself is kept: most of the mask's stored area survives.
    assert clean.sum() >= 0.8 * (lb.mask(mask) > 0).sum()
    noise = rng.integers(0, 255, (1, h, w), dtype=np.uint8) * mask
    assert ((lb.frames(noise) * clean) > 0).sum() > 0.5 * clean.sum()


@pytest.mark.parametrize(("estimate", "count"), [(1000, 3), (1, 2), (5, 10**3)])
def test_npy_writer_fixes_its_header(tmp_path, estimate, count):
    from usvid.data.extract.frames import NpyWriter

    writer = NpyWriter(tmp_path / "a.npy", 4, estimate=estimate)
    frames = np.arange(count * 16, dtype=np.int64).reshape(count, 4, 4).astype(np.uint8)
    for frame in frames:
        writer.append(frame[None])
    assert not (tmp_path / "a.npy").exists()  # only the hidden temp file until finished
    writer.finish()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy", mmap_mode="r"), frames)
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
