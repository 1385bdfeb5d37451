#!/usr/bin/env bash
# GPU checks in one run, for a CUDA machine whose python3 already has torch (a lent GPU box, a cloud VM).
#
#   bash benchmarks/gpu_check.sh --prepare    # here, with network/pip: wheels of what that python lacks
#                                             # (av, kornia, kornia_rs, pydicom) + a usvid wheel -> .whl/
#   OUT=results bash benchmarks/gpu_check.sh  # there: install .whl/, CUDA tests, GPU benchmarks -> $OUT/
#   GPU_STEPS="inference" ...                 # only some of: tests inference stream train cli
#
# What runs there: the CUDA tests (pinned non-blocking copies, NVDEC when torchcodec's CUDA build exists,
# torch CUDA predictors fp32/fp16/CUDA graphs/compile vs CPU, AMP + channels-last training, `usvid train
# --device cuda`), the inference benchmark (torch eager fp32 vs fp16, fp16 + CUDA graphs, compiled fp16 +
# CUDA graphs; onnxruntime-CUDA / TensorRT rows only where installed), the stream benchmark with the torch
# CUDA backend, and the training throughput benchmark with bf16 AMP.
set -uo pipefail
PY=${PY:-python3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

if [[ "${1:-}" == "--prepare" ]]; then
    rm -rf .whl && mkdir -p .whl
    grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
    plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    for pkg in av==18.1.0 kornia==0.9.0 kornia_rs==0.2.0 pydicom==3.0.2; do
        $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            "${plat[@]}" -d .whl "$pkg" || exit 1
    done
    $PY -m pip wheel -q --no-deps --no-build-isolation -w .whl . || exit 1
    ls -la .whl
    exit 0
fi

OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/usvid-site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/usvid-site${PYTHONPATH:+:$PYTHONPATH}
fi
LOG="$OUT/gpu_check.log"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    (cd /tmp && $PY -c "import torch, av, kornia, usvid; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA', 'av', av.__version__, 'kornia', \
kornia.__version__, 'usvid', usvid.__version__, usvid.__file__)")
} 2>&1 | tee "$LOG"

STEPS=" ${GPU_STEPS:-tests inference stream train cli} "
step() {  # step NAME SECONDS CMD...: run with a time limit, log, and go on whatever happens
    local name=$1 limit=$2
    shift 2
    [[ "$STEPS" == *" $name "* ]] || return 0
    echo "=== $name (limit ${limit}s)" | tee -a "$LOG"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG" | tail -n 45
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$LOG"
}

xdist=()
$PY -c "import xdist" 2>/dev/null && xdist=(-n 8)
# From outside the checkout, so the installed usvid (with usvid.models / usvid.cli) is the one imported.
step tests "${GPU_TESTS_LIMIT:-170}" bash -c "cd /tmp && $PY -m pytest -q -p no:cacheprovider ${xdist[*]} \
    -c '$REPO/pyproject.toml' --rootdir '$REPO' -m 'not slow' -rs \
    ${GPU_TESTS:-'$REPO/tests/video/test_gpu.py' '$REPO/tests/inference' '$REPO/tests/training'}"
step inference "${GPU_INFER_LIMIT:-200}" $PY benchmarks/inference_bench.py --device cuda --batches 1,8,32 \
    --compile first --compile-batches 1,8 --min-seconds 1.0 --out "$OUT/inference_gpu.json"
step stream "${GPU_STREAM_LIMIT:-90}" $PY benchmarks/stream_bench.py --backend torch --device cuda \
    --frames "${GPU_STREAM_FRAMES:-1200}" --out "$OUT/stream_gpu.json"
step train "${GPU_TRAIN_LIMIT:-100}" $PY benchmarks/train_bench.py --device cuda --amp --batch-size 32 \
    --steps 8 --rounds 3 --threads 8 --skip-pseudo --out "$OUT/train_gpu.json"
# The commands as a user runs them, on CUDA: synth -> extract -> train -> eval -> predict -> stream, and the
# message `export --format tensorrt` gives where TensorRT is not installed.
cli_pipeline() {
    local dev=${1:-cuda} w=/tmp/usvid-gpu-cli
    rm -rf "$w" && mkdir -p "$w" && cd /tmp || return 1
    $PY -m usvid synth "$w/synth" --patients 12 --seconds 2 --seed 0 || return 1
    $PY -m usvid extract "$w/synth/manifest.csv" "$w/store" --size 128 --split 50,25,25 --seed 1 || return 1
    $PY -m usvid train "$w/store" --model lanet_r18 --out "$w/run" --size 128 --stage1-epochs 1 --epochs 2 \
        --device "$dev" || return 1
    $PY -m usvid eval "$w/run/best.pt" "$w/store" --split test --out "$w/eval" --device "$dev" || return 1
    $PY -m usvid export "$w/run/best.pt" --format tensorrt --out "$w/m.engine"
    echo "export --format tensorrt exit code: $? (2 expected without TensorRT)"
    local video
    video=$(ls "$w"/synth/videos/*.mp4 | head -1)
    $PY -m usvid predict "$video" --model "$w/run/best.pt" --device "$dev" --out "$w/pred" || return 1
    cat "$w/pred/summary.csv"
    $PY -m usvid stream "$video" --model "$w/run/best.pt" --device "$dev" --realtime --max-frames 60 \
        --stats "$w/stream_stats.json" || return 1
    cp "$w/run/metrics.jsonl" "$OUT/cli_train_metrics.jsonl"
    cp "$w/stream_stats.json" "$OUT/cli_stream_stats.json"
}
export -f cli_pipeline
export PY OUT
step cli "${GPU_CLI_LIMIT:-200}" bash -c "cli_pipeline ${GPU_CLI_DEVICE:-cuda}"
echo "done; results in $OUT" | tee -a "$LOG"
