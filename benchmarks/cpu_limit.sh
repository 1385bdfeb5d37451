#!/usr/bin/env bash
# The CPU measurements of issue #16 in one go, one after another on a quiet machine (about 50 minutes on
# 2 cores): end-to-end inference per precision against the peaks, usvid stream on the fastest paths,
# torch.compile for training, extraction of one video against its raw decode. Needs ../shared/data (BUSI)
# for the calibration and parity store. Results: benchmarks/results/{cpu_e2e,cpu_compile,extract,stream_*}.
#   bash benchmarks/cpu_limit.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")"
W=${1:-/tmp/usvid-cpu-limit}
P=../.venv/bin/python
mkdir -p "$W"
lscpu > "$W/lscpu.txt"
[ -f "$W/busi256/videos.csv" ] || ../.venv/bin/usvid extract ../../shared/data/busi "$W/busi256" --size 256 \
    --split 70,15,15 --seed 0 --classes benign,malignant --groups ../../shared/data/busi/near_duplicates.csv
$P cpu_e2e_bench.py --store "$W/busi256" --keep "$W/models"
for m in model.int8 lanet_r18_256_random.int8 model; do
  $P stream_bench.py --model "$W/models/$m.onnx" --out "results/stream_cpu_${m//./_}.json"
done
$P extract_bench.py --videos 8 --seconds 10 --repeats 5 --backends pyav
$P extract_bench.py --videos 2 --seconds 60 --repeats 3 --backends pyav --out results/extract_60s.json
$P cpu_train_bench.py
$P cpu_batch_bench.py
$P cpu_compile_bench.py
