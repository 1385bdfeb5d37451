"""Real data: BUSI benign + malignant at 256 px, vanilla ResNet18 vs LA-Net-R18, CPU-feasible schedule.

Each BUSI image is a one-frame "video" and its own patient; near-duplicate groups
(``near_duplicates.csv``) are kept in one split; split 70/15/15 stratified by class, seeded. Both models
start from random weights (no ImageNet weights offline) and train on the same schedule; LA-Net also gets
its stage-1 epochs, as in the paper. ``best.pt`` is chosen on validation accuracy, metrics are on the test
split. The paper trains 100 epochs from ImageNet weights on a GPU; this schedule is minutes on 2 CPU cores,
so the figures are a smoke-level reproduction, not the paper's numbers.

    .venv/bin/python benchmarks/busi_real.py [--busi ../shared/data/busi] [--size 256] [--stage1-epochs 1]
        [--epochs 4] [--seeds 1] [--threads 1] [--work /tmp/usvid_busi]

Writes benchmarks/results/busi_real.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torchvision

import usvid
from usvid.data.extract import ExtractConfig, extract
from usvid.data.splits import SplitFractions
from usvid.io import write_json_atomic
from usvid.training.config import TrainConfig
from usvid.training.repeat import markdown_table, repeat_runs

RESULTS = Path(__file__).parent / "results" / "busi_real.json"
DEFAULT_BUSI = Path(__file__).resolve().parents[2] / "shared" / "data" / "busi"


def busi_store(busi: Path, work: Path, size: int) -> Path:
    """Extract benign + malignant (not normal) into a store; reuses a finished extraction."""
    view = work / "busi_bm"
    view.mkdir(parents=True, exist_ok=True)
    for label in ("benign", "malignant"):
        link = view / label
        if not link.exists():
            link.symlink_to((busi / label).resolve(), target_is_directory=True)
    store = work / f"store{size}"
    summary = extract(view, store, ExtractConfig(size=size, split=SplitFractions(0.70, 0.15, 0.15), seed=0,
                                                 groups=busi / "near_duplicates.csv"))
    if summary.failures:
        print(f"extraction reported {len(summary.failures)} failures, e.g. {summary.failures[0]}")
    return store


def _train_seconds(runs: Path, variants: dict, seeds: int) -> dict[str, float]:
    """Summed epoch times from each run's metrics.jsonl (the training cost, even for reused runs)."""
    out = {}
    for name in variants:
        total = 0.0
        for seed in range(seeds):
            for line in (runs / name / f"seed{seed}" / "metrics.jsonl").read_text().splitlines():
                total += json.loads(line)["seconds"]
        out[name] = total
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--busi", type=Path, default=DEFAULT_BUSI)
    p.add_argument("--work", type=Path, default=Path("/tmp/usvid_busi"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--stage1-epochs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--class-balance", default="undersample")
    args = p.parse_args()
    if not args.busi.is_dir():
        raise SystemExit(f"BUSI not found at {args.busi}; pass --busi")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    store = busi_store(args.busi, args.work, args.size)
    base = TrainConfig(size=args.size, stage1_epochs=args.stage1_epochs, epochs=args.epochs,
                       batch_size=args.batch_size, device="cpu", num_workers=0, class_balance=args.class_balance,
                       val_frames_per_video=None)
    variants = {"resnet18_cls": {"model": "resnet18_cls"}, "lanet_r18": {"model": "lanet_r18"}}
    result = repeat_runs(store, base, variants, list(range(args.seeds)), args.work / f"runs{args.size}",
                         on_run=lambda name, seed, row: print(f"{name} seed {seed}: {row}", flush=True))
    table = markdown_table(result)
    print("\n## BUSI benign vs malignant, test split (mean ± 95% CI over seeds)\n")
    print(table)
    write_json_atomic(RESULTS, {
        "machine": {"cpu_threads": torch.get_num_threads(), "logical_cpus": torch.multiprocessing.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torchvision": torchvision.__version__, "usvid": usvid.__version__},
        "command": "python benchmarks/busi_real.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("busi", "work")),
        "schedule": base.to_dict(),
        "seconds_this_invocation": time.perf_counter() - t0,  # small when finished runs were reused
        "train_seconds": _train_seconds(args.work / f"runs{args.size}", variants, args.seeds),
        "paper": {"resnet18_256_jsi": 0.41, "lanet_r18_512_jsi": 0.58,
                  "note": "paper: ImageNet init, 100 epochs, best-on-test selection in the authors' code"},
        **result.to_dict(),
    })
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
