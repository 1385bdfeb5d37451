"""The accuracy study on real breast ultrasound: BUSI and BUS-BRA, several seeds, each test split, cross-dataset.

Every run trains one model variant on one training store (``combined`` = BUSI + BUS-BRA, ``busi``,
``busbra``; the stores are written by ``usvid extract`` with per-source patient-level splits, so the combined
store's test split is exactly the union of the two single-source test splits) and then evaluates its
``best.pt`` (chosen on the validation split of its own training store, never on a test split) on the test
split of *both* single-source stores: the own-dataset figures and the cross-dataset figures come from the
same checkpoints. Per (training store, variant, test store) the table gives the mean over seeds and the
95% t-interval of that mean (Student t, n - 1 degrees of freedom, over seeds; clipped to [0, 1], the range a
mean of proportions can take, and to [-1, 1] for paired differences). LA-Net vs its vanilla
classifier is compared on paired seeds (same seed = same split, same sampling order, same initial FEX).

Resumable: a run folder with a finished ``last.pt`` is not retrained; an unfinished one resumes (``fit``
with ``resume=True``); an evaluation is reused only while the checkpoint it scored is unchanged (sha256).

The stores (``D`` = the data folder holding BUSI and BUS-BRA in their own layouts)::

    usvid extract D/busi D/busbra stores/bus256 --size 256 --split 70,15,15 --seed 0 \
        --classes benign,malignant --groups D/busi/near_duplicates.csv
    usvid extract D/busi stores/busi256 --size 256 --split 70,15,15 --seed 0 \
        --classes benign,malignant --groups D/busi/near_duplicates.csv
    usvid extract D/busbra stores/busbra256 --size 256 --split 70,15,15 --seed 0 --classes benign,malignant

The study::

    .venv/bin/python benchmarks/bus_study.py --stores stores --work study \
        --recipe recipes/lanet-effl0-bus.json --plan main --seeds 3 [--plan cross ...] [--threads 2] [--epochs N]

Writes ``benchmarks/results/bus_study.json`` and ``bus_study.md`` (what has finished so far, every time a
run finishes). ``--render RESULTS_JSON ...`` recomputes the summary, pairs and table of saved results files from
their runs, without stores or training (used when the way intervals are computed changes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

import usvid
from usvid.io import write_json_atomic, write_text_atomic
from usvid.training.config import TrainConfig, load_config
from usvid.training.eval import evaluate_checkpoint
from usvid.training.loop import fit
from usvid.training.metrics import DIFFERENCE_RANGE, PROPORTION_RANGE, t_interval95

RESULTS = Path(__file__).parent / "results"
#: Single-source stores whose test splits every run is scored on.
TEST_STORES = ("busi", "busbra")
#: Report fields (frame level) summarised; positive class = malignant.
METRICS = ("accuracy", "sensitivity", "specificity", "f1_macro", "auc", "jsi_mask", "jsi_box")
#: Every metric above is a proportion: intervals are clipped to what a mean of them (or a difference) can take.
INTERVAL = "95% Student t-interval of the mean over seeds, clipped to the metric's range ([0, 1]; [-1, 1] for deltas)"

#: Variant name -> TrainConfig overrides on top of the recipe.
VARIANTS: dict[str, dict[str, Any]] = {
    "lanet_effl0": {"model": "lanet_effl0", "pretrained": "imagenet"},
    "effl0_cls": {"model": "effl0_cls", "pretrained": "imagenet"},
    "lanet_effl0_area": {"model": "lanet_effl0", "pretrained": "imagenet", "fusion_pool": "area"},
    # P starts at a 5% lesion probability instead of 0.5 (ModelConfig.mask_prior).
    "lanet_effl0_prior": {"model": "lanet_effl0", "pretrained": "imagenet", "mask_prior": 0.05},
    # P on f3's 16 x 16 grid at 256 px instead of f4's 8 x 8 (ModelConfig.mask_stride).
    "lanet_effl0_s16": {"model": "lanet_effl0", "pretrained": "imagenet", "mask_stride": 16},
    # The larger ImageNet FEX (EfficientNet-Lite2, about 1.5x lanet_effl0's FLOPs) with the shipped mask grid.
    "lanet_effl2_s16": {"model": "lanet_effl2", "pretrained": "imagenet", "mask_stride": 16},
    # lanet_effl2_s16's vanilla classifier: the same Lite2 FEX and recipe, no lesion-aware branch.
    "effl2_cls": {"model": "effl2_cls", "pretrained": "imagenet"},
    # From scratch (no ImageNet ResNet weights exist offline): the paper's networks with the paper's recipe.
    "resnet18_cls": {"model": "resnet18_cls", "pretrained": None, "recipe": "paper"},
    "lanet_r18": {"model": "lanet_r18", "pretrained": None, "recipe": "paper"},
}

#: Plans: (training store, variant) in the order they run; seeds apply to each.
PLANS: dict[str, list[tuple[str, str]]] = {
    "main": [("combined", "lanet_effl0"), ("combined", "effl0_cls")],
    # LA-Net alone, e.g. at another input size (--size) where the grid of P is the question, not the pairing.
    "lanet": [("combined", "lanet_effl0")],
    "cross": [("busbra", "lanet_effl0"), ("busi", "lanet_effl0")],
    # Paired with "main"'s lanet_effl0 (bilinear fusion, the authors') on the same seeds.
    "pooling": [("combined", "lanet_effl0_area")],
    # Paired with "main"'s lanet_effl0 (the paper's identity start of the fusion BN) on the same seeds.
    "prior": [("combined", "lanet_effl0_prior")],
    # Paired with "main"'s lanet_effl0 (P on f4's grid, the paper's) on the same seeds.
    "stride": [("combined", "lanet_effl0_s16")],
    "scratch": [("combined", "resnet18_cls"), ("combined", "lanet_r18")],
    # The vanilla classifier alone: paired with "stride"'s lanet_effl0_s16 (the shipped recipe's network) on the
    # same seeds and schedule, across results files (benchmarks/paired_runs.py).
    "vanilla": [("combined", "effl0_cls")],
    # The larger FEX under the shipped recipe: compared with "stride"'s lanet_effl0_s16 on the same seeds.
    "effl2": [("combined", "lanet_effl2_s16")],
    # Lite2's vanilla classifier: paired with "effl2"'s lanet_effl2_s16 on the same seeds and schedule.
    "vanilla_effl2": [("combined", "effl2_cls")],
}

#: Pairs reported inside one results file, where both variants have finished a common seed.
PAIRS = (("lanet_effl0", "effl0_cls"), ("lanet_effl0_area", "lanet_effl0"), ("lanet_effl0_prior", "lanet_effl0"),
         ("lanet_effl0_s16", "effl0_cls"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def machine() -> dict[str, Any]:
    """CPU model and flags (``lscpu``), thread count and versions: benchmarks compare only within a run."""
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "usvid": usvid.__version__, "threads": torch.get_num_threads()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        info["cpu_model"] = fields.get("Model name", "").strip()
        info["cpu_count"] = fields.get("CPU(s)", "").strip()
        info["cpu_flags"] = fields.get("Flags", "").strip()
    except (OSError, subprocess.CalledProcessError):
        info["cpu_model"] = platform.processor()
    return info


def run_config(recipe: TrainConfig, variant: dict[str, Any], seed: int, args: argparse.Namespace) -> TrainConfig:
    overrides = {k: v for k, v in variant.items() if k not in ("recipe",)}
    base = TrainConfig() if variant.get("recipe") == "paper" else recipe
    if variant.get("recipe") == "paper":
        # Same input size, schedule length and batch as the recipe; the paper's optimiser and augmentation.
        base = base.merged(size=recipe.size, stage1_epochs=recipe.stage1_epochs, epochs=recipe.epochs,
                           batch_size=recipe.batch_size, class_balance=recipe.class_balance,
                           val_frames_per_video=recipe.val_frames_per_video)
    schedule = {k: getattr(args, k) for k in ("epochs", "stage1_epochs", "size") if getattr(args, k) is not None}
    return base.merged(**overrides, **schedule, seed=seed, device="cpu", num_workers=0)


def train_and_score(stores: Path, work: Path, train_store: str, name: str, seed: int, recipe: TrainConfig,
                    args: argparse.Namespace) -> dict[str, Any]:
    config = run_config(recipe, VARIANTS[name], seed, args)
    run = work / train_store / name / f"seed{seed}"
    t0 = time.perf_counter()
    fitted = fit(config, store_path(stores, train_store, config.size), run,
                 resume=(run / "last.pt").is_file())
    ckpt = fitted.best or fitted.last
    digest = sha256(ckpt)
    scores: dict[str, Any] = {}
    for test in TEST_STORES:
        out = run / f"eval_{test}"
        cached = out / "report.json"
        stamp = out / "checkpoint.sha256"
        report = json.loads(cached.read_text()) if cached.is_file() else None
        # Reuse only a report of this very checkpoint, written with positive-class metrics and this TTA setting.
        fresh = (report is not None and stamp.is_file() and stamp.read_text().strip() == digest
                 and report.get("positive_class") == "malignant" and report.get("tta") == args.tta)
        if not fresh:
            report = evaluate_checkpoint(ckpt, store_path(stores, test, config.size), "test", out,
                                         device="cpu", num_examples=4, positive="malignant", tta=args.tta).report
            write_text_atomic(stamp, digest + "\n")
        scores[test] = {m: report["frame_level"].get(m) for m in METRICS}
        scores[test]["images"] = report["frame_level"].get("frames", report.get("frames"))
        scores[test]["mask_threshold"] = report.get("mask_threshold")  # the model's own, chosen on val
    seconds = sum(json.loads(line)["seconds"] for line in (run / "metrics.jsonl").read_text().splitlines())
    return {"train_store": train_store, "variant": name, "seed": seed, "checkpoint": str(ckpt),
            "checkpoint_sha256": digest, "train_seconds": seconds, "wall_seconds": time.perf_counter() - t0,
            "best_epoch": fitted.best_epoch, "best_val_accuracy": fitted.best_val_accuracy,
            "config": config.to_dict(), "test": scores}


#: Study name -> store folder stem; the folder is ``<stem><size>`` under ``--stores``.
STORE_STEMS = {"combined": "bus", "busi": "busi", "busbra": "busbra"}


def store_path(stores: Path, name: str, size: int) -> Path:
    """The store of study name ``name`` (combined, busi, busbra) at input ``size`` under ``stores``."""
    return stores / f"{STORE_STEMS[name]}{size}"


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds per (training store, variant, test store, metric); paired deltas."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["train_store"], r["variant"]), []).append(r)
    summary: dict[str, Any] = {}
    for (train_store, name), rows in groups.items():
        entry: dict[str, Any] = {"seeds": sorted(r["seed"] for r in rows)}
        for test in TEST_STORES:
            entry[test] = {}
            for m in METRICS:
                values = [r["test"][test][m] for r in rows if r["test"][test][m] is not None]
                mean, low, high = t_interval95(values, PROPORTION_RANGE)
                entry[test][m] = {"mean": _finite(mean), "ci95_t": [_finite(low), _finite(high)]
                                  if not math.isnan(low) else None, "n": len(values)}
        summary[f"{train_store}/{name}"] = entry
    return summary


def paired(runs: list[dict[str, Any]], a: str, b: str, train_store: str = "combined") -> dict[str, Any]:
    """Per test store and metric: mean of (a - b) over seeds both finished, with its 95% t-interval."""
    by_seed = {(r["variant"], r["seed"]): r for r in runs if r["train_store"] == train_store}
    seeds = sorted({s for v, s in by_seed if v == a} & {s for v, s in by_seed if v == b})
    out: dict[str, Any] = {"a": a, "b": b, "train_store": train_store, "seeds": seeds}
    for test in TEST_STORES:
        out[test] = {}
        for m in ("accuracy", "sensitivity", "specificity", "f1_macro", "auc"):
            d = [by_seed[(a, s)]["test"][test][m] - by_seed[(b, s)]["test"][test][m] for s in seeds
                 if by_seed[(a, s)]["test"][test][m] is not None and by_seed[(b, s)]["test"][test][m] is not None]
            mean, low, high = t_interval95(d, DIFFERENCE_RANGE)
            out[test][m] = {"mean_delta": _finite(mean), "ci95_t": [_finite(low), _finite(high)]
                            if not math.isnan(low) else None, "wins": sum(x > 0 for x in d), "n": len(d)}
    return out


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| trained on | variant | seeds | tested on | " + " | ".join(METRICS) + " |",
             "|---" * (len(METRICS) + 4) + "|"]
    for key, entry in summary.items():
        train_store, name = key.split("/")
        for test in TEST_STORES:
            cells = []
            for m in METRICS:
                s = entry[test][m]
                if s["mean"] is None:
                    cells.append("n/a")
                elif s["ci95_t"] is None:
                    cells.append(f"{s['mean']:.3f}")
                else:
                    cells.append(f"{s['mean']:.3f} [{s['ci95_t'][0]:.3f}, {s['ci95_t'][1]:.3f}]")
            lines.append(f"| {train_store} | {name} | {len(entry['seeds'])} | {test} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def payload(runs: list[dict[str, Any]], command: str, machine_info: dict[str, Any], recipe: dict[str, Any]
            ) -> dict[str, Any]:
    """The results JSON: how it was made, the per-run scores, and the summary and pairs computed from them."""
    return {"command": command, "machine": machine_info, "recipe": recipe, "interval": INTERVAL,
            "positive_class": "malignant", "summary": summarise(runs),
            "paired": [pair for a, b in PAIRS if (pair := paired(runs, a, b))["seeds"]], "runs": runs}


def render(results_json: Path) -> None:
    """Recompute the summary, the pairs and the table of a finished results file from its runs; no training.

    The command, machine and recipe stay those of the runs (this is not a new measurement).
    """
    saved = json.loads(results_json.read_text())
    out = payload(saved["runs"], saved["command"], saved["machine"], saved["recipe"])
    write_json_atomic(results_json, out)
    write_text_atomic(results_json.with_suffix(".md"), markdown(out["summary"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stores", type=Path, help="Folder holding bus256 (BUSI + BUS-BRA), busi256, busbra256.")
    p.add_argument("--work", type=Path, help="Run folders (resumable).")
    p.add_argument("--recipe", type=Path, default=Path(__file__).parents[1] / "recipes" / "lanet-effl0-bus.json")
    p.add_argument("--plan", action="append", choices=sorted(PLANS), help="Repeatable; default main.")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="Override the recipe's stage-2 epochs.")
    p.add_argument("--stage1-epochs", type=int, default=None, help="Override the recipe's stage-1 epochs.")
    p.add_argument("--size", type=int, default=None,
                   help="Override the recipe's input size; the stores must be <stem><size> (e.g. bus512).")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tta", default="none", choices=("none", "flip"))
    p.add_argument("--name", default="bus_study", help="Results file stem under benchmarks/results/.")
    p.add_argument("--render", type=Path, nargs="+", metavar="RESULTS_JSON",
                   help="Only recompute summary, pairs and table of these results files from their runs.")
    args = p.parse_args()
    if args.render:
        for path in args.render:
            render(path)
        return
    if args.stores is None or args.work is None:
        p.error("--stores and --work are required to train (or give --render RESULTS_JSON)")
    torch.set_num_threads(args.threads)
    recipe = load_config(args.recipe)
    plans = args.plan or ["main"]
    results_json = RESULTS / f"{args.name}.json"
    previous = json.loads(results_json.read_text())["runs"] if results_json.is_file() else []
    runs = [r for r in previous]
    command = "python benchmarks/bus_study.py " + " ".join(
        f"--{k.replace('_', '-')} {item}" for k, v in vars(args).items() if v is not None
        for item in (v if isinstance(v, list) else [v]))
    for seed in range(args.seeds):
        for plan in plans:
            for train_store, name in PLANS[plan]:
                key = (train_store, name, seed)
                runs = [r for r in runs if (r["train_store"], r["variant"], r["seed"]) != key]
                row = train_and_score(args.stores, args.work, train_store, name, seed, recipe, args)
                runs.append(row)
                print(f"{train_store}/{name} seed {seed}: " + json.dumps(row["test"]), flush=True)
                out = payload(runs, command, machine(), recipe.to_dict())
                write_json_atomic(results_json, out)
                write_text_atomic(RESULTS / f"{args.name}.md", markdown(out["summary"]))
    print(markdown(summarise(runs)))


if __name__ == "__main__":
    main()
