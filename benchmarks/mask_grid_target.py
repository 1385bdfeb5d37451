"""What the training target itself scores in mask JSI, on LA-Net's grid and on finer ones.

LA-Net's mask P lives on f4's grid: input / 32, so 8 x 8 cells at 256 px. Training supervises each cell with the
lesion fraction it holds (:func:`usvid.training.losses.mask_target`); scoring upsamples P bilinearly to the
input and thresholds it at 0.5 (:func:`usvid.training.predictions.score_localisation`). This script hands the
scorer the training target itself, on every annotated frame of a split, for several grids. A lesion that fills
under half of every cell it touches vanishes from the target at 0.5, so this is what a network that learned its
target exactly would score: a reference to read a study's JSI against, not a strict bound (a P sharper than the
cell fractions can score higher).

Usage (stores as in ``benchmarks/bus_study.py``)::

    .venv/bin/python benchmarks/mask_grid_target.py /work/stores/busi256 /work/stores/busbra256 \
        --split test --size 256 --out benchmarks/results/mask_grid_target.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from usvid.io import write_json_atomic
from usvid.training.frames import BatchReader, open_store, split_frames
from usvid.training.losses import mask_target
from usvid.training.metrics import mean_ci95
from usvid.training.predictions import score_localisation

#: Grid sides at 256 px: strides 32 (LA-Net's f4), 16, 8 and 4.
STRIDES = (32, 16, 8, 4)


def target_scores(store_path: Path, split: str, size: int) -> dict[str, Any]:
    """Mean mask / box JSI of the training target, per stride, over the annotated lesion frames of ``split``."""
    store = open_store(store_path)
    frames = split_frames(store, split, sorted(set(store.labels)))
    reader = BatchReader(store, frames)
    indices = frames.annotated_indices
    scores: dict[int, dict[str, list[float]]] = {s: {"mask": [], "box": []} for s in STRIDES}
    for start in range(0, len(indices), 64):
        batch = reader.read(indices[start:start + 64])
        truth = torch.nn.functional.interpolate(batch.masks.float(), size=(size, size), mode="nearest")
        for stride in STRIDES:
            target = mask_target(truth / 255.0, size // stride)[:, 0].numpy()
            for k in range(len(target)):
                m, b = score_localisation(target[k], truth[k, 0].byte().numpy(), size)
                if m is not None:
                    scores[stride]["mask"].append(m)
                    scores[stride]["box"].append(b)
    rows = {}
    for stride, s in scores.items():
        rows[str(stride)] = {"grid": size // stride, "frames": len(s["mask"]),
                             **{f"jsi_{k}": _interval(s[k]) for k in ("mask", "box")}}
    return {"store": str(store_path), "split": split, "input_size": size, "by_stride": rows}


def _interval(values: list[float]) -> dict[str, float]:
    mean, half = mean_ci95(values)
    return {"mean": mean, "ci95": [mean - half, mean + half]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", type=Path, nargs="+")
    p.add_argument("--split", default="test")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mask_grid_target.json")
    args = p.parse_args()
    results = [target_scores(s, args.split, args.size) for s in args.stores]
    write_json_atomic(args.out, {"interval": "95% Student t-interval of the mean over frames",
                                 "rule": "training target (cell lesion fraction) upsampled bilinearly, threshold 0.5",
                                 "results": results})
    for r in results:
        for stride, row in r["by_stride"].items():
            print(f"{r['store']} {r['split']} stride {stride:>2} ({row['grid']}x{row['grid']}): "
                  f"JSI mask {row['jsi_mask']['mean']:.3f}, box {row['jsi_box']['mean']:.3f} "
                  f"over {row['frames']} frames")


if __name__ == "__main__":
    main()
