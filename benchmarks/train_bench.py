"""Training throughput vs the bare model, and the pseudo-label source comparison, on synthetic scan videos.

1. Throughput: the same planned stage-2 batches go through (a) the full training step
   (``train_stage2_epoch``: store read via the DataLoader, Kornia augmentation, forward, L_hyb, backward,
   Adam step) and (b) the bare model step (forward, L_hyb, backward, Adam step on the same batches already
   read and augmented). Rounds alternate (a) and (b) after a warm-up; median and range of frames/s.
   Overhead = 1 - bare / full step time (the issue's target: <= 10% of step time on CPU), per round (median,
   range) and from the fastest round of each (other jobs on a shared machine only add time). The read and
   augmentation costs are also timed alone ("read+aug share" of a step).
2. Pseudo-label sources: "self" (the paper's), "stage1" (frozen stage-1 model) and "ema" teacher, trained
   with the same short schedule and seeds and evaluated on the test split (mean and 95% CI).

    .venv/bin/python benchmarks/train_bench.py [--size 256] [--model lanet_r18] [--steps 6] [--rounds 3]
        [--threads 1,2] [--skip-pseudo] [--pseudo-seeds 2]

Writes benchmarks/results/train_bench.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from usvid.models import create_model

import usvid
from usvid.data.extract import ExtractConfig, extract
from usvid.io import write_json_atomic
from usvid.preprocess import PreprocessConfig
from usvid.synth.config import SynthConfig
from usvid.synth.dataset import generate_dataset
from usvid.training.augment import TrainAugment
from usvid.training.config import TrainConfig
from usvid.training.ddp import DistContext
from usvid.training.frames import BatchReader, open_store, split_frames, step_loader
from usvid.training.loop import StepEnv, train_stage2_epoch
from usvid.training.losses import binarize, hybrid_loss, mask_target
from usvid.training.repeat import STUDIES, markdown_table, repeat_runs
from usvid.training.sampling import plan_stage2

RESULTS = Path(__file__).parent / "results" / "train_bench.json"


def machine() -> dict:
    names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
             if ln.startswith("model name")] if Path("/proc/cpuinfo").exists() else []
    return {"cpu": names[0] if names else platform.processor(), "logical_cpus": torch.multiprocessing.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__, "usvid": usvid.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def synthetic_store(root: Path, size: int) -> Path:
    """12 patients of 2 s 320x240 scan videos, ~5% boxed frames, extracted at ``size``."""
    generate_dataset(root / "synth", SynthConfig(patients=12, seconds=2.0, width=320, height=240, box_fraction=0.05,
                                                 seed=0))
    extract(root / "synth" / "manifest.csv", root / "store", ExtractConfig(size=size, split=_split()))
    return root / "store"


def _split():
    from usvid.data.splits import SplitFractions

    return SplitFractions(0.6, 0.2, 0.2)


def _bare_step(model, optimizer, x, mask, annotated, labels, cfg: TrainConfig,
               amp_dtype: torch.dtype | None = None) -> None:
    if cfg.channels_last and x.is_cuda:  # as the full step does
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out = model(x)
        target = mask_target(mask, out.mask.shape[-1]) if out.mask is not None else None
        pseudo = binarize(out.mask, cfg.tau) if out.mask is not None else None
        terms = hybrid_loss(out.logits, labels, out.mask, target, annotated, pseudo, lam=cfg.lam, alpha=cfg.alpha)
    float(terms.total.detach())  # the full step reads the loss back too (NaN check, progress)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()


def throughput(store_path: Path, args, device: torch.device) -> dict:
    store = open_store(store_path)
    frames = split_frames(store, "train", store.labels)
    cfg = TrainConfig(model=args.model, size=args.size, batch_size=args.batch_size, device=device.type,
                      num_workers=args.workers)
    steps = plan_stage2(frames, cfg.batch_size, seed=0, epoch=0, frames_per_video=cfg.frames_per_video,
                        class_balance=cfg.class_balance)[: args.steps]
    reader = BatchReader(store, frames)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=len(store.labels)).to(device).train()
    # On CUDA both arms run channels-last (TrainConfig's default there); --amp adds bf16 autocast to both.
    amp_dtype = torch.bfloat16 if args.amp and device.type == "cuda" else None
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    augment = TrainAugment(cfg, PreprocessConfig(size=cfg.size)).to(device)
    env = StepEnv(config=cfg, ctx=DistContext(device=device), augment=augment, run=Path(tempfile.gettempdir()),
                  amp_dtype=amp_dtype)

    def full() -> float:
        loader = step_loader(reader, steps, cfg.num_workers, device.type == "cuda")
        return train_stage2_epoch(model, optimizer, loader, env, epoch=0, epochs=1).seconds

    read_t, aug_t, batches = [], [], []
    for s in steps:
        t0 = time.perf_counter()
        b = reader.read(s)
        t1 = time.perf_counter()
        x, m = augment(b.images.to(device), b.masks.to(device))
        _sync(device)
        t2 = time.perf_counter()
        read_t.append(t1 - t0)
        aug_t.append(t2 - t1)
        batches.append((x, m, b.annotated.to(device), b.labels.to(device)))

    def bare() -> float:
        t0 = time.perf_counter()
        for x, m, a, y in batches:
            _bare_step(model, optimizer, x, m, a, y, cfg, amp_dtype)
        _sync(device)
        return time.perf_counter() - t0

    full(), bare()  # warm-up
    full_s, bare_s = [], []
    for _ in range(args.rounds):
        full_s.append(full())
        bare_s.append(bare())
    n = len(steps) * cfg.batch_size
    full_fps = [n / s for s in full_s]
    bare_fps = [n / s for s in bare_s]
    overhead = [1 - b / f for f, b in zip(full_s, bare_s, strict=True)]
    return {
        "model": args.model, "size": args.size, "batch_size": cfg.batch_size, "steps_per_round": len(steps),
        "rounds": args.rounds, "num_workers": cfg.num_workers, "device": str(device),
        "amp": None if amp_dtype is None else str(amp_dtype),
        "full_frames_per_s": _stats(full_fps), "bare_frames_per_s": _stats(bare_fps),
        "overhead_fraction": _stats(overhead),
        # Other jobs on a shared box only ever add time, so the fastest round of each is the cleanest estimate.
        "overhead_best_rounds": 1 - min(bare_s) / min(full_s),
        "read_ms_per_batch": statistics.median(read_t) * 1000, "augment_ms_per_batch": statistics.median(aug_t) * 1000,
        "bare_ms_per_batch": statistics.median(bare_s) / len(steps) * 1000,
        # Read + augmentation timed alone, as a share of a step: robust to load swings between rounds.
        "component_share": (statistics.median(read_t) + statistics.median(aug_t))
        / (statistics.median(read_t) + statistics.median(aug_t) + statistics.median(bare_s) / len(steps)),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def pseudo_sources(store_path: Path, args, root: Path) -> dict:
    base = TrainConfig(model=args.pseudo_model, size=args.pseudo_size, stage1_epochs=args.pseudo_stage1_epochs,
                       epochs=args.pseudo_epochs, batch_size=8, frames_per_video=16, device=args.device,
                       num_workers=0, val_frames_per_video=8)
    variants = {name: {**ov, "model": args.pseudo_model} for name, ov in STUDIES["pseudo_sources"].items()}
    result = repeat_runs(store_path, base, variants, list(range(args.pseudo_seeds)), root / "pseudo")
    print("\n## Pseudo-label sources (test split, mean ± 95% CI over seeds)\n")
    print(markdown_table(result))
    return {"schedule": base.to_dict(), "seeds": args.pseudo_seeds, **result.to_dict()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lanet_r18")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to measure")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true", help="CUDA only: bf16 autocast + channels-last in both arms")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--skip-pseudo", action="store_true")
    p.add_argument("--pseudo-model", default="lanet_r18")
    p.add_argument("--pseudo-size", type=int, default=128)
    p.add_argument("--pseudo-stage1-epochs", type=int, default=2)
    p.add_argument("--pseudo-epochs", type=int, default=3)
    p.add_argument("--pseudo-seeds", type=int, default=2)
    args = p.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = synthetic_store(root, max(args.size, args.pseudo_size))
        # Keep the parts of an earlier result this invocation does not re-measure (e.g. with --skip-pseudo).
        result = {**(json.loads(args.out.read_text()) if args.out.exists() else {}), "machine": machine(),
                  "throughput": []}
        print("## Training throughput vs bare model step (same batches, same run)\n")
        print("| model | M | batch | threads | full step frames/s | bare step frames/s | overhead | read ms/batch "
              "| aug ms/batch | read+aug share | overhead (best rounds) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            t = {"threads": threads, **throughput(store, args, device)}
            result["throughput"].append(t)
            _print_row(t)
        if not args.skip_pseudo:
            result["pseudo_sources"] = pseudo_sources(store, args, root)
    write_json_atomic(args.out, result)
    print(f"\nwrote {args.out}")


def _print_row(t: dict) -> None:
    print(f"| {t['model']} | {t['size']} | {t['batch_size']} | {t['threads']} | "
          f"{t['full_frames_per_s']['median']:.2f} "
          f"({t['full_frames_per_s']['min']:.2f}-{t['full_frames_per_s']['max']:.2f}) | "
          f"{t['bare_frames_per_s']['median']:.2f} ({t['bare_frames_per_s']['min']:.2f}-"
          f"{t['bare_frames_per_s']['max']:.2f}) | {100 * t['overhead_fraction']['median']:.1f}% "
          f"({100 * t['overhead_fraction']['min']:.1f}-{100 * t['overhead_fraction']['max']:.1f}) | "
          f"{t['read_ms_per_batch']:.1f} | {t['augment_ms_per_batch']:.1f} | {100 * t['component_share']:.1f}% "
          f"| {100 * t['overhead_best_rounds']:.1f}% |")


if __name__ == "__main__":
    main()
