"""Tiny real frame stores (8 videos x 12 frames at 64 px) with a learnable signal, and a tiny training config.

Benign videos show a bright square "lesion", malignant ones a dark one; 3 frames of every training video
carry a box (and its filled-rectangle mask), like MBUD's sparse annotations.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import numpy as np

SIZE = 64
FRAMES = 12


def write_store(path: Path, videos: list[dict], arrays: dict[str, np.ndarray],
                boxes: dict[tuple[str, int], tuple[float, float, float, float]]):
    """Write the frame-store format :class:`usvid.data.store.FrameStore` reads (what ``usvid extract`` writes).

    ``boxes`` maps ``(video_id, frame)`` to corners ``(x0, y0, x1, y1)`` in stored pixels, as frames.csv holds them.
    """
    from usvid.boxes import Box
    from usvid.data.store import (
        FRAME_COLUMNS,
        STORE_FORMAT,
        STORE_JSON,
        STORE_VERSION,
        VIDEO_COLUMNS,
        FrameStore,
        format_boxes,
    )

    (path / "frames").mkdir(parents=True)
    (path / "masks").mkdir()
    video_rows, frame_rows = [], []
    for v in videos:
        vid, frames = v["video_id"], arrays[v["video_id"]]
        np.save(path / "frames" / f"{vid}.npy", frames)
        masks = []
        video_rows.append({**v, "source": f"{vid}.mp4", "roi_x": 0, "roi_y": 0, "roi_w": SIZE, "roi_h": SIZE,
                           "num_frames": len(frames), "fps": 30.0, "roi_method": "fixed", "width": SIZE,
                           "height": SIZE, "stored_frames": len(frames), "deduped": 0, "file": vid})
        for i in range(len(frames)):
            box = boxes.get((vid, i))
            if box is not None:
                mask = np.zeros((SIZE, SIZE), np.uint8)
                x0, y0, x1, y1 = (int(c) for c in box)
                mask[y0:y1, x0:x1] = 255
                masks.append(mask)
            x0, y0, x1, y1 = box if box is not None else ("", "", "", "")
            frame_rows.append({
                "video_id": vid, "patient_id": v["patient_id"], "frame_index": i, "timestamp": i / 30.0,
                "label": v["label"], "split": v["split"], "has_box": int(box is not None), "x0": x0, "y0": y0,
                "x1": x1, "y1": y1, "store_index": i, "annotated": int(box is not None),
                "num_boxes": int(box is not None), "boxes": format_boxes([Box.from_xyxy(*box)]) if box else "",
                "mask_index": len(masks) - 1 if box is not None else -1,
            })
        np.save(path / "masks" / f"{vid}.npy", np.stack(masks) if masks else np.zeros((0, SIZE, SIZE), np.uint8))
    for name, columns, rows in (("videos.csv", VIDEO_COLUMNS, video_rows), ("frames.csv", FRAME_COLUMNS, frame_rows)):
        with open(path / name, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    labels = sorted({v["label"] for v in videos})
    meta = {"format": STORE_FORMAT, "version": STORE_VERSION, "size": SIZE, "labels": labels}
    (path / STORE_JSON).write_text(json.dumps(meta))
    return FrameStore(path)


def make_store(path: Path, *, seed: int = 0, splits: dict[str, int] | None = None, annotated_per_video: int = 3,
               labels: tuple[str, ...] = ("benign", "malignant")):
    """A real store of ``splits`` videos per class and split (default train 2, val 1, test 1), 12 frames each.

    Training videos have boxes on their first ``annotated_per_video`` frames; val/test ones on every 4th.
    """
    rng = np.random.default_rng(seed)
    splits = splits or {"train": 2, "val": 1, "test": 1}
    videos, arrays, boxes = [], {}, {}
    n = 0
    for split, per_class in splits.items():
        for label in labels:
            for _ in range(per_class):
                vid = f"v{n:02d}"
                frames = rng.normal(90, 20, size=(FRAMES, SIZE, SIZE)).clip(0, 255)
                for i in range(FRAMES):
                    cx, cy = rng.integers(18, SIZE - 18, size=2)
                    r = int(rng.integers(7, 11))
                    y0, y1, x0, x1 = cy - r, cy + r, cx - r, cx + r
                    frames[i, y0:y1, x0:x1] = 220 if label == labels[0] else 15
                    if (i < annotated_per_video) if split == "train" else (i % 4 == 0):
                        boxes[(vid, i)] = (float(x0), float(y0), float(x1), float(y1))
                arrays[vid] = frames.astype(np.uint8)
                videos.append({"video_id": vid, "patient_id": f"p{n:02d}", "label": label, "split": split})
                n += 1
    return write_store(path, videos, arrays, boxes)


def tiny_config(**overrides):
    """A TrainConfig small enough for a unit test: tiny LA-Net, 64 px, 1 + 2 epochs, no worker processes."""
    from usvid.training.config import TrainConfig

    base = dict(model="lanet_tiny", size=64, stage1_epochs=1, epochs=2, batch_size=4, device="cpu", num_workers=0,
                frames_per_video=6, val_frames_per_video=None)
    return TrainConfig(**{**base, **overrides})


@contextlib.contextmanager
def one_thread():
    """One intra-op thread: on a shared 2-core box, two OpenMP threads contending with other jobs run tiny
    convolutions 10-30x slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
