"""BUSI-style image folders: ``<class>/<name>.png`` with lesion masks ``<name>_mask.png``, ``<name>_mask_1.png``...

Each image is a one-frame "video" and its own patient (BUSI has no patient ids; keep near-duplicates
together with ``--groups near_duplicates.csv``). All masks of an image are unioned into one mask; boxes
are the bounding boxes of the individual mask files (one per lesion). An image whose masks are all empty
(BUSI ``normal``) is an annotated frame with no lesion.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from usvid.boxes import Box
from usvid.data.items import Failure, SourceItem, SourceList
from usvid.errors import ProcessingError

_MASK = re.compile(r"^(?P<name>.+)_mask(_\d+)?$")


def read_busi(folder: Path) -> SourceList:
    """List the images of a BUSI-style folder with their mask files (masks are read at extraction)."""
    items, failures = [], []
    seen: dict[str, Path] = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        pngs = sorted(class_dir.glob("*.png"))
        masks: dict[str, list[Path]] = {}
        images = []
        for p in pngs:
            m = _MASK.match(p.stem)
            if m:
                masks.setdefault(m.group("name"), []).append(p)
            else:
                images.append(p)
        for img in images:
            vid = img.stem
            if vid in seen:
                failures.append(
                    Failure(str(img), f"duplicate image name '{vid}' (also {seen[vid]}); skipped")
                )
                continue
            seen[vid] = img
            mask_paths = tuple(sorted(masks.pop(img.stem, [])))
            items.append(
                SourceItem(
                    vid,
                    vid,
                    class_dir.name,
                    img.resolve(),
                    source=f"{class_dir.name}/{img.name}",
                    still=True,
                    mask_paths=mask_paths,
                    annotated_masks=bool(mask_paths),
                )
            )
        for name, orphans in sorted(masks.items()):
            failures.append(Failure(str(orphans[0]), f"mask without an image '{name}.png'; ignored"))
    return SourceList("busi", folder.resolve(), items, failures)


def load_masks(item: SourceItem, width: int, height: int) -> tuple[np.ndarray, list[Box]]:
    """Union of the item's masks ``(H, W)`` uint8 {0, 1} and one box per non-empty mask file (source pixels)."""
    import cv2

    union = np.zeros((height, width), np.uint8)
    boxes = []
    for path in item.mask_paths:
        m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise ProcessingError(f"{path}: not a readable mask image")
        if m.shape != (height, width):
            raise ProcessingError(
                f"{path}: mask is {m.shape[1]}x{m.shape[0]} but its image is {width}x{height}; masks must match"
            )
        binary = (m > 127).astype(np.uint8)
        if binary.any():
            x, y, w, h = cv2.boundingRect(binary)
            boxes.append(Box(float(x), float(y), float(w), float(h)))
        union |= binary
    return union, boxes
