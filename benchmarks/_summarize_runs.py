"""Collect ``<arm>_s<seed>`` training runs (config.json, metrics.jsonl, eval_test/report.json) into one results
file: per arm and seed the compute path, training frames/s, best validation accuracy and the test metrics, plus
per-arm means and the paired (same seed) differences.

    .venv/bin/python benchmarks/_summarize_runs.py WORK_DIR OUT.json
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

from cpu_peaks import cpu_description

from usvid.io import write_json_atomic

KEYS = ("accuracy", "f1_macro", "auc", "sensitivity", "specificity", "jsi_mask", "jsi_box")


def run_row(run: Path) -> dict:
    config = json.loads((run / "config.json").read_text())
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [e for e in epochs if "val_accuracy" in e]
    test = json.loads((run / "eval_test" / "report.json").read_text())["frame_level"]
    return {"run": run.name, "compute": config.get("compute"),
            "train_frames_per_s": statistics.median(e["frames_per_s"] for e in epochs),
            "best_val_accuracy": max(e["val_accuracy"] for e in epochs),
            "test": {k: test[k] for k in KEYS if k in test}}


def main() -> None:
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows: dict[str, dict[int, dict]] = {}
    for run in sorted(work.iterdir()):
        match = re.fullmatch(r"(\w+?)_s(\d+)", run.name)
        if match and (run / "eval_test" / "report.json").exists():
            rows.setdefault(match[1], {})[int(match[2])] = run_row(run)
    means = {arm: {k: statistics.mean(r["test"][k] for r in seeds.values()) for k in KEYS}
             | {"best_val_accuracy": statistics.mean(r["best_val_accuracy"] for r in seeds.values()),
                "train_frames_per_s": statistics.mean(r["train_frames_per_s"] for r in seeds.values())}
             for arm, seeds in rows.items()}
    paired = {}
    if {"bf16", "fp32"} <= rows.keys():
        common = sorted(rows["bf16"].keys() & rows["fp32"].keys())
        paired = {k: [rows["bf16"][s]["test"][k] - rows["fp32"][s]["test"][k] for s in common] for k in KEYS}
    write_json_atomic(out, {"machine": cpu_description(), "runs": rows, "mean": means, "bf16_minus_fp32": paired})
    for arm, m in means.items():
        print(arm, {k: round(v, 3) for k, v in m.items()})
    print("bf16 - fp32 per seed:", {k: [round(v, 3) for v in d] for k, d in paired.items()})


if __name__ == "__main__":
    main()
