"""Small datasets on disk: tiny "ultrasound" videos with sparse boxes in a manifest; BUSI, BUS-BRA folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from usvid.boxes import Box
from usvid.data.manifest import VideoEntry, write_annotations, write_manifest
from usvid.video.testvideos import write_test_video

W, H, N = 150, 98, 20


def make_dataset(root: Path, n_videos: int = 4, num_frames: int = N) -> Path:
    """``n_videos`` videos of 2 classes, 2 videos per patient; video v0 has boxes on frames 3 and 7 (7: none)."""
    entries = []
    for i in range(n_videos):
        path = write_test_video(
            root / "videos" / f"v{i}.mp4", kind="ultrasound", width=W, height=H, num_frames=num_frames, seed=i
        )
        entries.append(VideoEntry(f"v{i}", f"p{i // 2}", path, ("benign", "malignant")[(i // 2) % 2]))
    write_manifest(root / "manifest.csv", entries, root)
    write_annotations(
        root / "annotations.json",
        {"v0": {3: [Box(40, 30, 30, 20), Box(90, 60, 10, 8)], 7: []}},
        {e.video_id: (W, H) for e in entries},
    )
    return root


def make_busi(root: Path) -> Path:
    """A BUSI-style folder: benign/malignant/normal images with masks (one image has two masks)."""
    rng = np.random.default_rng(0)
    specs = [
        ("benign", "benign (1)", [(10, 12, 30, 20)]),
        ("benign", "benign (2)", [(5, 5, 10, 10), (40, 30, 12, 9)]),
        ("malignant", "malignant (1)", [(20, 15, 25, 25)]),
        ("normal", "normal (1)", []),
    ]
    for cls, name, boxes in specs:
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 255, (57, 83), dtype=np.uint8))
        masks = [np.zeros((57, 83), np.uint8) for _ in boxes] or [np.zeros((57, 83), np.uint8)]
        for mask, (x, y, w, h) in zip(masks, boxes):
            mask[y : y + h, x : x + w] = 255
        for k, mask in enumerate(masks):
            cv2.imwrite(str(folder / (f"{name}_mask.png" if k == 0 else f"{name}_mask_{k}.png")), mask)
    (root / "near_duplicates.csv").write_text(
        "group,class,image\n1,benign,benign (1)\n1,malignant,malignant (1)\n"
    )
    return root


BUSBRA_SPECS = [  # id, case, pathology, mask box (x, y, w, h; exclusive end)
    ("bus_0001-l", "1", "benign", (10, 12, 30, 20)),
    ("bus_0001-r", "1", "benign", (40, 20, 15, 10)),
    ("bus_0002-s", "2", "malignant", (20, 15, 25, 25)),
    ("bus_0003-s", "3", "malignant", (5, 30, 12, 9)),
    ("bus_0004-l", "4", "benign", (50, 5, 20, 30)),
]


def make_busbra(root: Path) -> Path:
    """A BUS-BRA folder of 83x57 images; bus_0002-s's BBOX disagrees with its mask, bus_0003-s's Height with its PNG."""
    rng = np.random.default_rng(1)
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir()
    rows = ["ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX"]
    for vid, case, label, (x, y, w, h) in BUSBRA_SPECS:
        cv2.imwrite(str(root / "Images" / f"{vid}.png"), rng.integers(0, 255, (57, 83), dtype=np.uint8))
        mask = np.zeros((57, 83), np.uint8)
        mask[y : y + h, x : x + w] = 255
        cv2.imwrite(str(root / "Masks" / f"mask_{vid[4:]}.png"), mask)
        bbox = [x + 1, y + 1, w - 1, h - 1] if vid != "bus_0002-s" else [x + 4, y + 1, w - 1, h - 1]
        height = 57 if vid != "bus_0003-s" else 60
        histology = "fibroadenoma" if label == "benign" else "invasive ductal carcinoma"
        side = {"l": "left", "r": "right", "s": "single"}[vid[-1]]
        rows.append(f'{vid},{case},{histology},{label},4,GE Logiq 7,83,{height},{side},"[{",".join(map(str, bbox))}]"')
    (root / "bus_data.csv").write_text("\n".join(rows) + "\n")
    return root
