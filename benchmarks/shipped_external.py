"""The shipped model on real breast ultrasound *video* it never saw: the 20 BUVFM clips of ../shared/data.

The clips carry a BI-RADS-derived risk label per clip (high / mid / low risk, no lesion), not a pathology
label, so this is a ranking check, not an accuracy: does the clip's mean P(malignant) order high-risk above
low-risk clips? Per-clip mean P(malignant) by label and the ROC AUC of high vs low risk, high + mid vs low, and
high vs low + no lesion, each with its DeLong 95% interval (none at AUC 0 or 1, where it collapses) and a
one-sided exact permutation p-value. Writes benchmarks/results/shipped_buvfm.json.

    .venv/bin/python benchmarks/shipped_external.py [--model lanet-effl0-bus] [--work /tmp/usvid-buvfm]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from pathlib import Path

import numpy as np

from usvid.cpu import cpu_info
from usvid.inference.predict import PredictConfig, predict_videos
from usvid.io import write_json_atomic
from usvid.training.metrics import delong_ci, roc_auc

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "breast-buvfm"
OUT = Path(__file__).parent / "results" / "shipped_buvfm.json"


def _exact_p(x: np.ndarray, n_pos: int, observed: float) -> float:
    """One-sided exact permutation p-value: the share of all ways to call ``n_pos`` of the clips positive whose
    AUC is at least ``observed`` (DeLong's interval collapses to a point at AUC 0 or 1, so it says nothing)."""
    hits = total = 0
    for chosen in itertools.combinations(range(len(x)), n_pos):
        y = np.zeros(len(x), int)
        y[list(chosen)] = 1
        hits += roc_auc(y, x) >= observed - 1e-12
        total += 1
    return hits / total


def _auc(scores: dict[str, list[float]], pos: tuple[str, ...], neg: tuple[str, ...]) -> dict:
    p = [s for k in pos for s in scores[k]]
    n = [s for k in neg for s in scores[k]]
    y = np.array([1] * len(p) + [0] * len(n))
    x = np.array(p + n)
    auc = roc_auc(y, x)
    ci = delong_ci(y, x) if 0 < auc < 1 else None
    return {"positive": list(pos), "negative": list(neg), "clips": [len(p), len(n)], "auc": auc,
            "auc_ci95_delong": ci, "p_value_exact_permutation": _exact_p(x, len(p), auc)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lanet-effl0-bus")
    ap.add_argument("--work", type=Path, default=Path("/tmp/usvid-buvfm"))
    args = ap.parse_args()
    labels = {r["video"].rsplit(".", 1)[0]: r["label"] for r in csv.DictReader(open(CLIPS / "labels.csv"))}
    predict_videos(CLIPS, args.model, args.work, PredictConfig(overlay=False, device="cpu"))
    scores: dict[str, list[float]] = {lab: [] for lab in sorted(set(labels.values()))}
    clips = []
    for r in csv.DictReader(open(args.work / "summary.csv")):
        scores[labels[r["video"]]].append(float(r["p_malignant"]))
        clips.append({"clip": r["video"], "label": labels[r["video"]], "frames": int(r["frames"]),
                      "mean_p_malignant": float(r["p_malignant"]), "lesion_fraction": float(r["lesion_fraction"])})
    result = {
        "model": args.model, "clips_folder": "../shared/data/videos/breast-buvfm (20 clips, 224x224, 5 fps)",
        "score": "per clip: mean over its frames of P(malignant) (usvid predict summary.csv p_malignant)",
        "mean_p_malignant_by_label": {k: float(np.mean(v)) for k, v in scores.items()},
        "ranking": [_auc(scores, ("high_risk",), ("low_risk",)),
                    _auc(scores, ("high_risk", "mid_risk"), ("low_risk",)),
                    _auc(scores, ("high_risk",), ("low_risk", "no_lesion"))],
        "clips": clips, "cpu": cpu_info().describe(),
    }
    write_json_atomic(OUT, result)
    print(json.dumps({k: result[k] for k in ("mean_p_malignant_by_label", "ranking")}, indent=1))


if __name__ == "__main__":
    main()
