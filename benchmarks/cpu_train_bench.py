"""CPU training at the matrix units' limit: the full ``usvid train`` step against the bare model step and the
matmul peaks, in fp32 and in the precision ``usvid train --device cpu`` picks (bf16 on CPUs with bf16 units).

Per model at 256 px, in the same run:
- the matmul peaks of this CPU (``cpu_peaks.py``: fp32, bf16) at the training thread count;
- the bare step (forward, L_hyb, backward, AdamW on batches already read and augmented) in fp32 NCHW (the old
  CPU path), fp32 channels-last, and the chosen compute path (``usvid.training.compute``), with its achieved GFLOP/s
  (3 x forward FLOPs per frame, the usual forward + backward estimate) as a fraction of the peak of its precision;
- the full step (``train_stage2_epoch``: store read through the DataLoader, Kornia augmentation, the step) for
  0, 1 and 2 loader workers, as a fraction of the bare step.
Rounds interleave the arms; medians and ranges. Records ``lscpu``'s model and flags.

    .venv/bin/python benchmarks/cpu_train_bench.py [--models lanet_r18,lanet_effl0] [--size 256]
        [--steps 5] [--rounds 3] [--workers 0,1,2]

Writes benchmarks/results/cpu_train.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from cpu_peaks import cpu_description, torch_peak
from train_bench import synthetic_store
from usvid.models import create_model
from usvid.models.flops import count_flops

from usvid.io import write_json_atomic
from usvid.preprocess import PreprocessConfig
from usvid.training.augment import TrainAugment
from usvid.training.compute import compute_settings
from usvid.training.config import TrainConfig
from usvid.training.ddp import DistContext
from usvid.training.frames import BatchReader, open_store, split_frames, step_loader
from usvid.training.loop import StepEnv, train_stage2_epoch
from usvid.training.losses import binarize, hybrid_loss, mask_target
from usvid.training.optim import make_optimizer
from usvid.training.sampling import plan_stage2

RESULTS = Path(__file__).parent / "results" / "cpu_train.json"
BATCH = {"lanet_r18": 8, "lanet_effl0": 16}


def _bare_step(model, optimizer, batch, cfg: TrainConfig, amp_dtype) -> None:
    """The step of ``train_stage2_epoch`` without the loader and augmentation (same loss, same read-back)."""
    x, mask, annotated, labels = batch
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type="cpu", dtype=amp_dtype, enabled=amp_dtype is not None):
        out = model(x)
    logits_mask = out.mask_logits if getattr(out, "mask_logits", None) is not None else out.mask
    target = mask_target(mask, logits_mask.shape[-1])
    pseudo = binarize(logits_mask.detach().float().sigmoid(), cfg.tau)
    terms = hybrid_loss(out.logits.float(), labels, logits_mask.float(), target, annotated, pseudo, lam=cfg.lam,
                        alpha=cfg.alpha, from_logits=True)
    float(terms.total.detach())
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()


def _arm(store, name: str, size: int, steps_n: int, *, channels_last: bool, amp: bool,
         batch: int | None = None):
    """Model, optimizer, env and planned steps for one arm (each arm trains its own copy)."""
    cfg = TrainConfig(model=name, size=size, batch_size=batch or BATCH.get(name, 8), device="cpu",
                      num_workers=0, channels_last=channels_last, amp=amp, stage1_epochs=0)
    frames = split_frames(store, "train", store.labels)
    steps = plan_stage2(frames, cfg.batch_size, seed=0, epoch=0, frames_per_video=cfg.frames_per_video,
                        class_balance=cfg.class_balance)[:steps_n]
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(store.labels), in_channels=1).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    compute = compute_settings(cfg, torch.device("cpu"))
    preprocess = PreprocessConfig(size=size, mean=0.5, std=0.5)
    augment = TrainAugment(cfg, preprocess)
    env = StepEnv(config=cfg, ctx=DistContext(device=torch.device("cpu")), augment=augment,
                  run=Path(tempfile.gettempdir()), amp_dtype=compute.amp_dtype)
    return cfg, steps, model, optimizer, env, compute


def augmented_batches(store, arm) -> list:
    """The batches of ``arm``'s planned steps, read and augmented once (so arms time the step alone)."""
    _, steps, _, _, env, _ = arm
    reader = BatchReader(store, split_frames(store, "train", store.labels))
    out = []
    for s in steps:
        b = reader.read(s)
        x, m = env.augment(b.images, b.masks)
        out.append((x, m, b.annotated, b.labels))
    return out


def measure_model(store_path: Path, name: str, args) -> dict:
    store = open_store(store_path)
    frames = split_frames(store, "train", store.labels)
    reader = BatchReader(store, frames)
    workers = [int(w) for w in args.workers.split(",")]
    arms = {"fp32_nchw": _arm(store, name, args.size, args.steps, channels_last=False, amp=False),
            "fp32_cl": _arm(store, name, args.size, args.steps, channels_last=True, amp=False),
            "chosen": _arm(store, name, args.size, args.steps, channels_last=True, amp=True)}
    cfg0, steps = arms["chosen"][0], arms["chosen"][1]
    batches = []
    augment = arms["chosen"][4].augment
    for s in steps:
        b = reader.read(s)
        x, m = augment(b.images, b.masks)
        batches.append((x, m, b.annotated, b.labels))
    n = len(steps) * cfg0.batch_size

    def bare(arm) -> float:
        cfg, _, model, opt, _, compute = arm
        t0 = time.perf_counter()
        for batch in batches:
            _bare_step(model, opt, batch, cfg, compute.amp_dtype)
        return time.perf_counter() - t0

    def full(arm, num_workers: int) -> float:
        cfg, steps_, model, opt, env, _ = arm
        env.config = replace(cfg, num_workers=num_workers)
        loader = step_loader(reader, steps_, num_workers, False)
        return train_stage2_epoch(model, opt, loader, env, epoch=0, epochs=1).seconds

    for arm in arms.values():  # warm-up
        bare(arm)
    full(arms["chosen"], 0)
    times: dict[str, list[float]] = {"bare_fp32_nchw": [], "bare_fp32_cl": [], "bare_chosen": [],
                                     **{f"full_w{w}": [] for w in workers}}
    for _ in range(args.rounds):
        for arm_name, arm in arms.items():
            times[f"bare_{arm_name}"].append(bare(arm))
        for w in workers:
            times[f"full_w{w}"].append(full(arms["chosen"], w))
    fps = {k: {"median": n / statistics.median(v), "min": n / max(v), "max": n / min(v)} for k, v in times.items()}
    model_config = arms["chosen"][2].config
    train_flops_per_frame = 3 * count_flops(model_config, args.size)
    chosen = arms["chosen"][5]
    return {"model": name, "size": args.size, "batch_size": cfg0.batch_size, "steps": len(steps),
            "rounds": args.rounds, "threads": torch.get_num_threads(), "compute": chosen.to_dict(),
            "frames_per_s": fps, "train_gflop_per_frame": train_flops_per_frame / 1e9,
            "full_over_bare": {w: fps[f"full_w{w}"]["median"] / fps["bare_chosen"]["median"] for w in workers},
            "chosen_over_fp32": fps["bare_chosen"]["median"] / fps["bare_fp32_nchw"]["median"],
            # What channels-last alone gives, and what bf16 adds on top of it.
            "cl_over_nchw_fp32": fps["bare_fp32_cl"]["median"] / fps["bare_fp32_nchw"]["median"],
            "bf16_over_fp32_cl": fps["bare_chosen"]["median"] / fps["bare_fp32_cl"]["median"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lanet_r18,lanet_effl0")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    threads = torch.get_num_threads()
    peaks = {"fp32_gflops": torch_peak(2048, torch.float32, 5), "bf16_gflops": torch_peak(2048, torch.bfloat16, 5)}
    result = {"machine": cpu_description(), "threads": threads, "peaks": peaks, "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp), args.size)
        for name in args.models.split(","):
            row = measure_model(store, name, args)
            peak = peaks["bf16_gflops" if row["compute"]["precision"] == "bf16" else "fp32_gflops"]
            gflops = row["frames_per_s"]["bare_chosen"]["median"] * row["train_gflop_per_frame"]
            row["bare_chosen_gflops"] = gflops
            row["bare_chosen_peak_fraction"] = gflops / peak
            row["bare_fp32_peak_fraction"] = (row["frames_per_s"]["bare_fp32_nchw"]["median"]
                                              * row["train_gflop_per_frame"] / peaks["fp32_gflops"])
            result["models"].append(row)
            write_json_atomic(args.out, result)
    print(f"machine: {result['machine']['model']} {result['machine']['matrix_flags']}, {threads} threads; "
          f"peaks fp32 {peaks['fp32_gflops']:.0f}, bf16 {peaks['bf16_gflops']:.0f} GFLOP/s")
    print("| model | batch | path | bare fp32 NCHW f/s | bare fp32 channels-last f/s | bare chosen f/s | chosen/fp32 NCHW "
          "| chosen % of peak | " + " | ".join(f"full w{w} f/s (of bare)" for w in args.workers.split(",")) + " |")
    print("|---" * (8 + len(args.workers.split(","))) + "|")
    for r in result["models"]:
        fp = r["frames_per_s"]
        cells = " | ".join(f"{fp[f'full_w{w}']['median']:.1f} ({100 * r['full_over_bare'][int(w)]:.0f}%)"
                           for w in args.workers.split(","))
        print(f"| {r['model']} | {r['batch_size']} | {r['compute']['precision']} | {fp['bare_fp32_nchw']['median']:.1f} | "
              f"{fp['bare_fp32_cl']['median']:.1f} | {fp['bare_chosen']['median']:.1f} | {r['chosen_over_fp32']:.2f}x | "
              f"{100 * r['bare_chosen_peak_fraction']:.0f}% | {cells} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
