#!/usr/bin/env bash
# bf16 vs fp32 CPU training on real scans: the same recipe, seeds and schedule, fp32 and bf16 autocast, on the BUSI
# store (patient-level 70/15/15 split); each best.pt evaluated on the test split. Writes
# benchmarks/results/bf16_vs_fp32.json. Needs ../shared/data (BUSI) and a CPU with bf16 units for the bf16 arm.
#   bash benchmarks/bf16_vs_fp32.sh [WORK_DIR]   (about 2 minutes per run on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/usvid-bf16}
U=.venv/bin/usvid
D=../shared/data
mkdir -p "$W"
[ -f "$W/busi256/videos.csv" ] || $U extract $D/busi "$W/busi256" --size 256 --split 70,15,15 --seed 0 \
    --classes benign,malignant --groups $D/busi/near_duplicates.csv
.venv/bin/python -c "import json; c = json.load(open('recipes/lanet-effl0-bus.json')); c['amp'] = False; json.dump(c, open('$W/fp32.json', 'w'))"
for seed in 0 1 2; do
  for arm in bf16 fp32; do
    cfg=recipes/lanet-effl0-bus.json; [ $arm = fp32 ] && cfg="$W/fp32.json"
    run="$W/${arm}_s$seed"
    [ -f "$run/eval_test/report.json" ] && continue
    $U train "$W/busi256" --config $cfg --out "$run" --device cpu --seed $seed
    $U eval "$run/best.pt" "$W/busi256" --split test --out "$run/eval_test"
  done
done
.venv/bin/python benchmarks/_summarize_runs.py "$W" benchmarks/results/bf16_vs_fp32.json
