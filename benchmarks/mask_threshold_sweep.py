"""Mask JSI against the lesion-pixel threshold: chosen on the validation split, reported on the test splits.

The paper scores P >= 0.5 after upsampling. On LA-Net's 8 x 8 grid at 256 px a small lesion fills under half of
every cell it touches, so even the training target itself loses it at 0.5 (``mask_grid_target.py``). This
script runs each checkpoint once per split, keeps P for every annotated frame, and scores mask and box JSI at
each threshold of a grid with :func:`usvid.training.predictions.score_localisation`, the function
``usvid eval`` scores with. The threshold with the best validation mask JSI (the checkpoint's own training
store's val split: never a test split) is then reported on the test splits beside 0.5. ``usvid eval``,
``predict`` and ``stream`` take it as ``--threshold``.

Usage::

    .venv/bin/python benchmarks/mask_threshold_sweep.py --stores /work/stores \
        --run combined=/work/study30/combined/lanet_effl0/seed0/best.pt [--run ...] --name mask_threshold_sweep
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from bus_study import TEST_STORES, store_path

from usvid.checkpoint import load_checkpoint
from usvid.cpu import cpu_info
from usvid.io import write_json_atomic, write_text_atomic
from usvid.training import calibrate
from usvid.training.frames import open_store

RESULTS = Path(__file__).parent / "results"
#: The library's grid (what `usvid train` chooses from) and 0.2, for models whose P starts low (`mask_prior`).
THRESHOLDS = (0.2, *calibrate.THRESHOLDS)


def jsi_by_threshold(ckpt: Any, store_dir: Path, split: str) -> dict[str, dict[str, float]]:
    """``{threshold: {"jsi_mask", "jsi_box", "frames"}}`` over the annotated lesion frames of ``split``: the
    library's :func:`usvid.training.calibrate.jsi_by_threshold` (what ``usvid train`` chooses with), on this grid."""
    store = open_store(store_dir)
    scores, frames = calibrate.jsi_by_threshold(ckpt.build_model(), ckpt, store, split, THRESHOLDS)
    return {t: {**s, "frames": frames} for t, s in scores.items()}


def sweep(stores: Path, train_store: str, checkpoint: Path) -> dict[str, Any]:
    ckpt = load_checkpoint(checkpoint)
    size = ckpt.preprocess.size
    val = jsi_by_threshold(ckpt, store_path(stores, train_store, size), "val")
    chosen = max(val, key=lambda t: val[t]["jsi_mask"])
    tests = {name: jsi_by_threshold(ckpt, store_path(stores, name, size), "test") for name in TEST_STORES}
    return {"checkpoint": str(checkpoint), "train_store": train_store, "size": size, "val": val,
            "chosen_on_val": float(chosen), "test": tests,
            "test_at_chosen": {n: tests[n][chosen] for n in TEST_STORES},
            "test_at_0.5": {n: tests[n]["0.5"] for n in TEST_STORES}}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| checkpoint | size | threshold chosen on val | test | JSI mask at 0.5 | at chosen | "
             "JSI box at 0.5 | at chosen |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for n in TEST_STORES:
            a, b = r["test_at_0.5"][n], r["test_at_chosen"][n]
            lines.append(f"| {r['checkpoint']} | {r['size']} | {r['chosen_on_val']:g} | {n} | {a['jsi_mask']:.3f} | "
                         f"{b['jsi_mask']:.3f} | {a['jsi_box']:.3f} | {b['jsi_box']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stores", type=Path, required=True)
    p.add_argument("--run", action="append", required=True, metavar="TRAIN_STORE=CHECKPOINT",
                   help="Repeatable: the training store's study name (combined, busi, busbra) and a best.pt.")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="mask_threshold_sweep")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for item in args.run:
        train_store, _, path = item.partition("=")
        rows.append(sweep(args.stores, train_store, Path(path)))
        print(json.dumps({k: rows[-1][k] for k in ("checkpoint", "chosen_on_val", "test_at_0.5", "test_at_chosen")}),
              flush=True)
    payload = {"rule": "P upsampled bilinearly to the input, lesion pixels p >= threshold; threshold with the "
                       "best mean mask JSI on the training store's val split", "thresholds": list(THRESHOLDS),
               "runs": rows, "cpu": cpu_info().describe()}
    write_json_atomic(RESULTS / f"{args.name}.json", payload)
    write_text_atomic(RESULTS / f"{args.name}.md", markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
