#!/usr/bin/env bash
# Reproduces the shipped model lanet-effl0-bus (usvid/weights/lanet-effl0-bus/) from BUSI and BUS-BRA in their
# own layouts (as in ../shared/data: busi/ with near_duplicates.csv, busbra/). Resumable: re-run after a stop.
# About 25-30 minutes of training on 2 CPU cores with bf16 units (AVX-512 BF16), about twice that without.
#   bash recipes/lanet-effl0-bus.sh [DATA_DIR] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/data}
W=${2:-/tmp/usvid-ship}
U=.venv/bin/usvid
mkdir -p "$W"
X1="usvid extract $D/busi $D/busbra $W/bus256 --size 256 --split 70,15,15 --seed 0 --classes benign,malignant --groups $D/busi/near_duplicates.csv"
X2="usvid extract $D/busi $W/busi256 --size 256 --split 70,15,15 --seed 0 --classes benign,malignant --groups $D/busi/near_duplicates.csv"
X3="usvid extract $D/busbra $W/busbra256 --size 256 --split 70,15,15 --seed 0 --classes benign,malignant"
for x in "$X1" "$X2" "$X3"; do
  store=$(echo "$x" | grep -o "$W/[a-z0-9]*" | head -1)
  [ -f "$store/videos.csv" ] || .venv/bin/$x
done
T="usvid train $W/bus256 --config recipes/shipped-lanet-effl0-bus.json --out $W/run --device cpu"
.venv/bin/$T $( [ -f "$W/run/last.pt" ] && echo --resume )
.venv/bin/python recipes/package_shipped.py "$W/run/best.pt" --name lanet-effl0-bus --train-store "$W/bus256" \
    --test busi="$W/busi256" --test busbra="$W/busbra256" --eval-dir "$W/eval" \
    --recipe recipes/shipped-lanet-effl0-bus.json --command "$T" --extract "$X1" --extract "$X2" --extract "$X3"
