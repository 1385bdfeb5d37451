"""Does a malignant-probability threshold chosen on val, or flip test-time augmentation, lift test macro-F1?

For each checkpoint: softmax probabilities on the training store's val split and on each test store's test split,
without and with flip TTA (``usvid.training.predictions.predict_frames``, the evaluator's own function). Then, per
checkpoint and test split, four decision rules are scored:

- ``argmax``: the class with the larger probability (what ``usvid eval`` reports);
- ``val_t``: malignant when P(malignant) >= t, t the grid value (0.05 .. 0.95) with the best val macro-F1
  (ties: nearest 0.5); chosen on val only, the test split never informs it;
- ``flip``, ``flip+val_t``: the same on probabilities averaged with the horizontal mirror.

Mask JSI (LA-Net only) is reported at the model's stored threshold with and without flip.
Writes a JSON (with lscpu), the per-frame probabilities beside it (``.npz``, keys MODEL/SPLIT/TTA/probs and
MODEL/SPLIT/labels) and prints a markdown table. Exploratory: it informs whether an operating-point
feature is worth building; it is not a shipped feature.

    python benchmarks/operating_point.py --val-store /work/stores/bus256 \
        --test busi=/work/stores/busi256 --test busbra=/work/stores/busbra256 \
        --ckpt vanilla_s0=/work/study30v/combined/effl0_cls/seed0/best.pt ... --out results/operating_point.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usvid.boxes import deployed_threshold
from usvid.checkpoint import load_checkpoint
from usvid.training import metrics
from usvid.training.frames import BatchReader, open_store, split_frames
from usvid.training.predictions import predict_frames
from usvid.training.sampling import plan_eval

GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def predict(model, ckpt, store_path: Path, split: str, tta: str, threshold: float) -> dict[str, Any]:
    store = open_store(store_path)
    frames = split_frames(store, split, ckpt.class_names)
    reader = BatchReader(store, frames)
    preds = predict_frames(model, reader, plan_eval(frames, None), ckpt.preprocess, torch.device("cpu"),
                           tta=tta, mask_threshold=threshold)
    return {"labels": preds.labels, "probs": preds.probs, "jsi_mask": preds.jsi_mask}


def scores(labels: np.ndarray, pred: np.ndarray, p_pos: np.ndarray, pos: int) -> dict[str, float]:
    """Macro-F1, accuracy, the positive class's sensitivity and specificity (usvid's own counts), AUC of ``p_pos``."""
    cm = metrics.confusion_matrix(labels, pred, 2)
    counts = [metrics.one_vs_rest_counts(cm, k) for k in (0, 1)]
    # A class neither present nor predicted scores F1 0 (no frames to be right about).
    f1 = [2 * tp / d if (d := 2 * tp + fp + fn) else 0.0 for tp, fn, fp, _ in counts]
    binary = metrics.binary_metrics(*counts[pos])
    return {
        "f1_macro": float(np.mean(f1)),
        "accuracy": float(np.trace(cm) / cm.sum()),
        "sensitivity": binary["sensitivity"],
        "specificity": binary["specificity"],
        "auc": float(metrics.roc_auc(labels == pos, p_pos)),
    }


def decide(p_pos: np.ndarray, t: float, pos: int) -> np.ndarray:
    return np.where(p_pos >= t, pos, 1 - pos)


def choose_threshold(labels: np.ndarray, p_pos: np.ndarray, pos: int) -> float:
    best = max(GRID, key=lambda t: (round(scores(labels, decide(p_pos, t, pos), p_pos, pos)["f1_macro"], 9),
                                    -abs(t - 0.5)))
    return float(best)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--val-store", type=Path, required=True)
    ap.add_argument("--test", action="append", required=True, help="NAME=STORE (its test split)")
    ap.add_argument("--ckpt", action="append", required=True, help="NAME=CHECKPOINT")
    ap.add_argument("--positive", default="malignant")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ensemble", action="append", default=[],
                    help="NAME=M1,M2,...: also score the mean of those models' probabilities (argmax, and flip)")
    ap.add_argument("--summarise", action="store_true",
                    help="run nothing: read --out's JSON and .npz, add the --ensemble rows, print the table")
    args = ap.parse_args()
    if args.summarise:
        results = json.loads(args.out.read_text())
        results["ensembles"] = ensembles(np.load(args.out.with_suffix(".npz")), args.ensemble, args.positive,
                                         results)
        write(args.out, results, None)
        print(table(results))
        return
    torch.set_num_threads(2)
    tests = dict(item.split("=", 1) for item in args.test)
    results: dict[str, Any] = {"machine": subprocess.run(["lscpu"], capture_output=True, text=True).stdout,
                               "grid": GRID.tolist(), "models": {}}
    probs: dict[str, np.ndarray] = {}
    for item in args.ckpt:
        name, path = item.split("=", 1)
        ckpt = load_checkpoint(path)
        model = ckpt.build_model().eval()
        pos = list(ckpt.class_names).index(args.positive)
        thr = deployed_threshold(ckpt.mask_threshold)
        row: dict[str, Any] = {"checkpoint": path, "mask_threshold": thr, "tests": {}}
        for tta in ("none", "flip"):
            val = predict(model, ckpt, args.val_store, "val", tta, thr)
            t = choose_threshold(val["labels"], val["probs"][:, pos], pos)
            row[f"val_threshold_{tta}"] = t
            probs[f"{name}/val/{tta}/probs"] = val["probs"]
            probs[f"{name}/val/labels"] = val["labels"]
            row[f"val_f1_{tta}"] = {"argmax": scores(val["labels"], val["probs"].argmax(1), val["probs"][:, pos],
                                                     pos)["f1_macro"],
                                    "val_t": scores(val["labels"], decide(val["probs"][:, pos], t, pos),
                                                    val["probs"][:, pos], pos)["f1_macro"]}
            for test, store in tests.items():
                te = predict(model, ckpt, Path(store), "test", tta, thr)
                p = te["probs"][:, pos]
                tag = "" if tta == "none" else "flip+"
                out = row["tests"].setdefault(test, {})
                probs[f"{name}/{test}/{tta}/probs"] = te["probs"]
                probs[f"{name}/{test}/labels"] = te["labels"]
                out["argmax" if tta == "none" else "flip"] = scores(te["labels"], te["probs"].argmax(1), p, pos)
                out[f"{tag}val_t"] = scores(te["labels"], decide(p, t, pos), p, pos)
                if te["jsi_mask"]:
                    out[f"jsi_mask_{tta}"] = float(np.mean(te["jsi_mask"]))
            print(name, tta, "val threshold", t, flush=True)
        results["models"][name] = row
        write(args.out, results, probs)
    results["ensembles"] = ensembles(probs, args.ensemble, args.positive, results)
    write(args.out, results, probs)
    print(table(results))


def write(out: Path, results: dict[str, Any], probs: dict[str, np.ndarray] | None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out)
    out.with_suffix(".md").write_text(table(results) + "\n")
    if probs is not None:
        np.savez_compressed(out.with_suffix(".npz"), **probs)


def ensembles(probs: Any, specs: list[str], positive: str, results: dict[str, Any]) -> dict[str, Any]:
    """Per ensemble and test split: the scores of the members' mean probabilities, without and with flip."""
    out: dict[str, Any] = {}
    for spec in specs:
        name, members = spec.split("=", 1)
        names = members.split(",")
        ckpt = load_checkpoint(results["models"][names[0]]["checkpoint"])
        pos = list(ckpt.class_names).index(positive)
        row: dict[str, Any] = {"members": names, "tests": {}}
        for test in results["models"][names[0]]["tests"]:
            labels = probs[f"{names[0]}/{test}/labels"]
            for tta, rule in (("none", "argmax"), ("flip", "flip")):
                p = np.mean([probs[f"{m}/{test}/{tta}/probs"] for m in names], axis=0)
                row["tests"].setdefault(test, {})[rule] = scores(labels, p.argmax(1), p[:, pos], pos)
        out[name] = row
    return out


def table(results: dict[str, Any]) -> str:
    rules = ("argmax", "val_t", "flip", "flip+val_t")
    lines = ["| model | test | " + " | ".join(f"F1 {r}" for r in rules) + " | sens argmax / val_t | t (none, flip) |",
             "|---|---|" + "---|" * (len(rules) + 2)]
    for name, row in results["models"].items():
        for test, out in row["tests"].items():
            f1 = " | ".join(f"{out[r]['f1_macro']:.3f}" for r in rules)
            sens = f"{out['argmax']['sensitivity']:.3f} / {out['val_t']['sensitivity']:.3f}"
            chosen = f"{row['val_threshold_none']}, {row['val_threshold_flip']}"
            lines.append(f"| {name} | {test} | {f1} | {sens} | {chosen} |")
    for name, row in results.get("ensembles", {}).items():
        lines.append("")
        lines.append(f"Ensemble {name} (mean probabilities of {', '.join(row['members'])}):")
        for test, out in row["tests"].items():
            lines.append(f"- {test}: macro-F1 {out['argmax']['f1_macro']:.3f} (flip {out['flip']['f1_macro']:.3f}), "
                         f"AUC {out['argmax']['auc']:.3f}, sensitivity {out['argmax']['sensitivity']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
