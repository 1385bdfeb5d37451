"""Training learns: the losses, schedule, sampling and augmentation together fit a signal the model can see.

A tiny LA-Net at 128 px on a store where the class is visible (benign lesions bright, malignant dark) and
every frame carries its lesion mask:

- stage 1 lifts the validation mask JSI well above the untrained network's;
- stage 2 reaches a high validation accuracy;
- a control with the training labels permuted across patients (half of each class swapped, so labels and
  lesion brightness are independent) stays near chance, so the accuracy above is learned, not leaked.

About 40 s on one CPU thread (shared with other jobs); runs in the default suite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from usvid.models import create_model

from tests.helpers.stores import SIZE, write_store
from usvid.preprocess import PreprocessConfig
from usvid.training import sampling
from usvid.training.config import TrainConfig
from usvid.training.frames import BatchReader, split_frames
from usvid.training.loop import evaluate, fit

#: Training videos per class, validation videos per class, frames per training / validation video.
TRAIN_VIDEOS, VAL_VIDEOS, TRAIN_FRAMES, VAL_FRAMES = 6, 10, 8, 4
LEARN = dict(model="lanet_tiny", size=128, batch_size=4, lr=3e-3, stage1_epochs=4, epochs=3, device="cpu",
             num_workers=0, frames_per_video=None, val_frames_per_video=None)


def learnable_store(path: Path, *, seed: int = 0, shuffle_labels: bool = False):
    """Square lesions of side 20-28 px at random places in 64 px noise, 220 (benign) or 15 (malignant) bright,
    a mask on every frame. ``shuffle_labels`` swaps the label of half the training patients of each class."""
    rng = np.random.default_rng(seed)
    videos, arrays, boxes = [], {}, {}
    for split, per_class, frames in (("train", TRAIN_VIDEOS, TRAIN_FRAMES), ("val", VAL_VIDEOS, VAL_FRAMES)):
        for label in ("benign", "malignant"):
            for k in range(per_class):
                vid = f"v{len(videos):02d}"
                pixels = rng.normal(90, 20, size=(frames, SIZE, SIZE)).clip(0, 255)
                for i in range(frames):
                    r = int(rng.integers(10, 15))
                    cx, cy = rng.integers(r + 2, SIZE - r - 2, size=2)
                    pixels[i, cy - r:cy + r, cx - r:cx + r] = 220 if label == "benign" else 15
                    boxes[(vid, i)] = (float(cx - r), float(cy - r), float(cx + r), float(cy + r))
                arrays[vid] = pixels.astype(np.uint8)
                shown = label
                if shuffle_labels and split == "train" and k < per_class // 2:
                    shown = "malignant" if label == "benign" else "benign"
                videos.append({"video_id": vid, "patient_id": f"p{len(videos):02d}", "label": shown, "split": split})
    return write_store(path, videos, arrays, boxes)


@pytest.fixture(scope="module")
def learned(tmp_path_factory, _one_thread):
    root = tmp_path_factory.mktemp("learning")
    store = learnable_store(root / "store")
    return store, fit(TrainConfig(**LEARN), store, root / "run")


def _untrained_jsi(store) -> float:
    torch.manual_seed(LEARN.get("seed", 0))  # the initial weights fit() starts from
    model = create_model(LEARN["model"], num_classes=2, in_channels=1)
    val = split_frames(store, "val", [str(c) for c in store.labels])
    indices = sampling.plan_eval(val, None)
    return evaluate(model, BatchReader(store, val), indices, PreprocessConfig(size=LEARN["size"]),
                    torch.device("cpu"))["jsi_mask"]


def test_stage1_lifts_the_mask_jsi_well_above_the_untrained_network(learned):
    store, result = learned
    untrained = _untrained_jsi(store)
    after_stage1 = [r for r in result.history if r["stage"] == 1][-1]["val_jsi_mask"]
    assert after_stage1 >= 0.5 and after_stage1 >= untrained + 0.3, (untrained, after_stage1)


def test_stage2_learns_the_visible_class(learned):
    _, result = learned
    assert result.best_val_accuracy >= 0.9, [r["val_accuracy"] for r in result.history]


def test_shuffled_labels_stay_near_chance(tmp_path):
    store = learnable_store(tmp_path / "store", shuffle_labels=True)
    train = split_frames(store, "train", ["benign", "malignant"])
    assert sorted(np.bincount(train.labels).tolist()) == [TRAIN_VIDEOS * TRAIN_FRAMES] * 2  # still balanced
    # Stage 2 only (stage 1 never sees a label); the best epoch, as best.pt would pick it, on 80 val frames.
    result = fit(TrainConfig(**{**LEARN, "stage1_epochs": 0}), store, tmp_path / "run")
    assert result.best_val_accuracy <= 0.7, [r["val_accuracy"] for r in result.history]
