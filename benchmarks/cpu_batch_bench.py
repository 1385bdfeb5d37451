"""Training throughput on the CPU by batch size: the bare step of the path ``usvid train --device cpu`` uses.

Per model at 256 px and batch size (default 4, 8, 16, 32): forward, L_hyb, backward and AdamW on batches
already read and augmented (``cpu_train_bench.py``'s bare step), bf16 autocast + channels-last on CPUs with
bf16 units; median of ``--rounds`` interleaved rounds of ``--steps`` steps, in frames/s. Throughput only: the
batch size also changes what the optimiser does, so the recipes' batch sizes are set by the accuracy study,
and this says what each costs in speed. Records ``lscpu``'s model and flags.

    .venv/bin/python benchmarks/cpu_batch_bench.py [--models lanet_r18,lanet_effl0] [--batches 4,8,16,32]

Writes benchmarks/results/cpu_batch.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from cpu_peaks import cpu_description
from cpu_train_bench import _arm, _bare_step, augmented_batches
from train_bench import synthetic_store

from usvid.io import write_json_atomic
from usvid.training.frames import open_store

RESULTS = Path(__file__).parent / "results" / "cpu_batch.json"


def measure(store_path: Path, name: str, batches: list[int], args) -> list[dict]:
    store = open_store(store_path)
    arms = {b: _arm(store, name, args.size, args.steps, channels_last=True, amp=True, batch=b)
            for b in batches}
    data = {b: augmented_batches(store, arm) for b, arm in arms.items()}

    def run(b: int) -> float:
        cfg, _, model, opt, _, compute = arms[b]
        t0 = time.perf_counter()
        for batch in data[b]:
            _bare_step(model, opt, batch, cfg, compute.amp_dtype)
        return sum(len(batch[3]) for batch in data[b]) / (time.perf_counter() - t0)

    for b in batches:  # warm-up: oneDNN builds its primitives per shape
        run(b)
    fps: dict[int, list[float]] = {b: [] for b in batches}
    for _ in range(args.rounds):
        for b in batches:
            fps[b].append(run(b))
    compute = arms[batches[0]][5].to_dict()
    return [{"model": name, "batch_size": b, "frames_per_s": round(statistics.median(v), 2),
             "rounds": [round(x, 2) for x in v], "compute": compute} for b, v in fps.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="lanet_r18,lanet_effl0")
    ap.add_argument("--batches", default="4,8,16,32")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp), args.size)
        rows = [row for name in args.models.split(",") for row in measure(store, name, batches, args)]
    out = {"machine": cpu_description(), "threads": torch.get_num_threads(), "size": args.size, "rows": rows}
    write_json_atomic(args.out, out)
    print(f"machine: {out['machine']['model']} {out['machine']['matrix_flags']}, {out['threads']} threads")
    print("| model | " + " | ".join(f"batch {b} f/s" for b in batches) + " |")
    print("|---" * (1 + len(batches)) + "|")
    for name in args.models.split(","):
        cells = " | ".join(f"{r['frames_per_s']}" for r in rows if r["model"] == name)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
