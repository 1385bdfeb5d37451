#!/usr/bin/env bash
# A longer CPU schedule of the accuracy study's recipe: lanet_effl0 on the combined BUSI + BUS-BRA store for
# 10 epochs (one seed), best.pt on the combined validation split, scored on each test split. Writes
# benchmarks/results/bus_long10.json. Needs ../shared/data. About 20 minutes on 2 cores with bf16 units.
#   bash benchmarks/bus_long.sh [WORK_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/usvid-long}
E=${2:-10}
U=.venv/bin/usvid
D=../shared/data
mkdir -p "$W"
[ -f "$W/bus256/videos.csv" ] || $U extract $D/busi $D/busbra "$W/bus256" --size 256 --split 70,15,15 --seed 0 \
    --classes benign,malignant --groups $D/busi/near_duplicates.csv
[ -f "$W/busi256/videos.csv" ] || $U extract $D/busi "$W/busi256" --size 256 --split 70,15,15 --seed 0 \
    --classes benign,malignant --groups $D/busi/near_duplicates.csv
[ -f "$W/busbra256/videos.csv" ] || $U extract $D/busbra "$W/busbra256" --size 256 --split 70,15,15 --seed 0 \
    --classes benign,malignant
run="$W/long$E"
$U train "$W/bus256" --config recipes/lanet-effl0-bus.json --epochs $E --out "$run" --device cpu --seed 0 \
    $( [ -f "$run/last.pt" ] && echo --resume )
for t in busi256 busbra256; do
  $U eval "$run/best.pt" "$W/$t" --split test --out "$run/eval_$t"
done
.venv/bin/python - "$run" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
keys = ("accuracy", "sensitivity", "specificity", "f1_macro", "auc", "jsi_mask", "jsi_box")
cis = ("accuracy_ci95", "sensitivity_ci95", "specificity_ci95", "auc_ci95")
epochs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
test = {}
for t in ("busi256", "busbra256"):
    frame = json.loads((run / f"eval_{t}" / "report.json").read_text())["frame_level"]
    test[t] = {k: frame[k] for k in keys + cis}
out = {"config": json.loads((run / "config.json").read_text()),
       "epochs": [{k: e.get(k) for k in ("epoch", "val_accuracy", "frames_per_s", "seconds")} for e in epochs],
       "best_epoch": max(epochs, key=lambda e: e["val_accuracy"])["epoch"],
       "test": test}
Path(f"benchmarks/results/bus_long{len(epochs)}.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out["test"], indent=1))
PY
