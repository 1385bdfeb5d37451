"""Paired seeds across two study results files: variant B minus variant A, per test split and metric.

Same seed = same split, sampling order and initial FEX, so the per-seed differences pair. Prints each seed's
values, the mean difference with the 95% Student t-interval over seeds, clipped to [-1, 1]
(``usvid.training.metrics.t_interval95``), and the wins. Runs made on different machines pair by seed but are
not bit-identical (bf16 kernels differ).

    .venv/bin/python benchmarks/paired_runs.py results/bus_study10.json lanet_effl0 \
        results/bus_study_pooling10.json lanet_effl0_area
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from usvid.training.metrics import DIFFERENCE_RANGE, t_interval95

METRICS = ("accuracy", "sensitivity", "specificity", "f1_macro", "auc", "jsi_mask", "jsi_box")


def runs(path: Path, variant: str, store: str) -> dict[int, dict]:
    return {r["seed"]: r["test"] for r in json.loads(path.read_text())["runs"]
            if r["variant"] == variant and r["train_store"] == store}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a_file", type=Path)
    ap.add_argument("a_variant")
    ap.add_argument("b_file", type=Path)
    ap.add_argument("b_variant")
    ap.add_argument("--store", default="combined", help="training store of both")
    args = ap.parse_args()
    a, b = runs(args.a_file, args.a_variant, args.store), runs(args.b_file, args.b_variant, args.store)
    seeds = sorted(set(a) & set(b))
    print(f"{args.b_variant} minus {args.a_variant}, seeds {seeds}")
    for split in sorted(a[seeds[0]]):
        for metric in METRICS:
            if a[seeds[0]][split].get(metric) is None:
                continue
            d = [b[s][split][metric] - a[s][split][metric] for s in seeds]
            mean, low, high = t_interval95(d, DIFFERENCE_RANGE)
            ci = "" if math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
            print(f"{split:7s} {metric:11s} {args.b_variant} {[round(b[s][split][metric], 3) for s in seeds]} "
                  f"{args.a_variant} {[round(a[s][split][metric], 3) for s in seeds]} "
                  f"diff {mean:+.3f}{ci}, higher on {sum(x > 0 for x in d)} of {len(d)}")


if __name__ == "__main__":
    main()
