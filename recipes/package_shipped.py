"""Package a trained checkpoint as a shipped model: ``usvid/weights/<name>/`` (checkpoint, ONNX, model.json).

    .venv/bin/python recipes/package_shipped.py RUN/best.pt --name lanet-effl0-bus --train-store STORES/bus256 \
        --test busi=STORES/busi256 --test busbra=STORES/busbra256 --eval-dir WORK/eval \
        --recipe recipes/lanet-effl0-bus.json --command "usvid train ..."

The card records the training store's extraction settings and every video id per split (public dataset ids:
BUSI file names, BUS-BRA image names), so anyone can check that no test image was trained on. Scoring runs
here, on this very checkpoint, on each ``--test`` store's test split.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import dataclasses
import datetime as dt
import shutil
from typing import Any

from usvid import __version__
from usvid.io import atomic_path, file_digest, write_json_atomic
from usvid.shipped import CARD_FORMAT, CARD_NAME, ROLE_FILES, WEIGHTS_DIR, ShippedModel, get_shipped

#: Frame-level report fields copied into the card, per test split.
CARD_METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1_macro", "auc", "jsi_mask", "jsi_box")


def package_model(checkpoint: str | Path, name: str, *, summary: str, test_stores: dict[str, Path],
                  eval_dir: Path, data: dict[str, Any], recipe: dict[str, Any], root: Path = WEIGHTS_DIR,
                  sample: Path | None = None, store_size: int | None = None) -> ShippedModel:
    """Write ``root/name``: the checkpoint, its parity-checked ONNX export and ``model.json``.

    ``test_stores``: name -> frame store whose ``test`` split this checkpoint is scored on here (reports and
    plots under ``eval_dir/<name>``), after it is written, so the card's metrics are of the shipped file itself. ``data`` and ``recipe`` go
    into the card as given (how the training store was made and split; the training config and command).
    """
    from usvid.checkpoint import load_checkpoint, save_checkpoint
    from usvid.inference.export import ExportConfig, export_model
    from usvid.training.eval import evaluate_checkpoint

    checkpoint = Path(checkpoint)
    ck = load_checkpoint(checkpoint)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if ck.preprocess.store_size is None:
        # Trained before checkpoints recorded the frame path: its store size is the training store's, so
        # record it (the weights are unchanged) and predictors take exactly the trained path without a warning.
        ck.preprocess = dataclasses.replace(ck.preprocess, store_size=store_size)
        save_checkpoint(folder / ROLE_FILES["checkpoint"], ck)
    else:
        with atomic_path(folder / ROLE_FILES["checkpoint"]) as tmp:
            shutil.copyfile(checkpoint, tmp)
    shipped = folder / ROLE_FILES["checkpoint"]
    tests = {}
    for split_name, store in test_stores.items():
        report = evaluate_checkpoint(shipped, store, "test", eval_dir / split_name, device="cpu",
                                     positive="malignant").report
        frame = report["frame_level"]
        tests[split_name] = {"store": Path(store).name, "split": "test", "images": frame["count"],
                             "mask_threshold": report["mask_threshold"],
                             "positive_class": frame["positive_class"], "ci_method": frame["ci_method"],
                             **{k: frame.get(k) for k in CARD_METRICS},
                             **{f"{k}_ci95": frame[f"{k}_ci95"] for k in CARD_METRICS if f"{k}_ci95" in frame},
                             "positive_counts": frame.get("positive_counts")}
    export = export_model(folder / ROLE_FILES["checkpoint"], folder / ROLE_FILES["onnx"],
                          ExportConfig(sample=sample))
    train_state = ck.train_state or {}
    card = {
        "format": CARD_FORMAT, "name": name, "summary": summary, "usvid_version": __version__,
        "date": dt.date.today().isoformat(),
        "model": train_state.get("config", {}).get("model"), "model_config": ck.model_config,
        "class_names": ck.class_names, "preprocess": ck.preprocess.to_dict(),
        "input": f"(B, {ck.preprocess.in_channels}, {ck.preprocess.size}, {ck.preprocess.size}) float32: grey frame "
                 f"letterboxed to {ck.preprocess.frame_size} px (blanked outside the scan region), resized to "
                 f"{ck.preprocess.size}, scaled to [0, 1], then (x - {ck.preprocess.mean}) / {ck.preprocess.std}",
        "trained_epoch": train_state.get("epoch"), "validation": train_state.get("val"),
        # The lesion-pixel threshold predictors use by default: chosen on the training store's val split.
        "mask_threshold": ck.mask_threshold,
        "data": data, "recipe": recipe, "test": tests,
        "onnx_parity": export.parity.describe() if export.parity is not None else None,
        "files": {ROLE_FILES[r]: file_digest(folder / ROLE_FILES[r]) for r in ROLE_FILES},
    }
    write_json_atomic(folder / CARD_NAME, card)
    return get_shipped(name, root)


def store_data(store: Path) -> dict:
    meta = json.loads((store / "store.json").read_text())
    with open(store / "videos.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids: dict[str, list[str]] = defaultdict(list)
    counts: Counter = Counter()
    for r in rows:
        ids[r["split"]].append(r["video_id"])
        counts[(r["dataset"], r["split"], r["label"])] += 1
    table = [{"dataset": d, "split": s, "label": lab, "images": n} for (d, s, lab), n in sorted(counts.items())]
    patients = {s: len({r["patient_id"] for r in rows if r["split"] == s}) for s in ids}
    return {"store": store.name, "sources": meta.get("sources"), "extract_config": meta.get("config"),
            "resize": meta.get("resize"), "grey": meta.get("grey"), "patients_per_split": patients,
            "images": table, "video_ids": {s: sorted(v) for s, v in sorted(ids.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--summary", default="LA-Net, EfficientNet-Lite0 FEX from ImageNet, trained on BUSI + BUS-BRA "
                                         "at 256 px; benign vs malignant and a lesion mask")
    p.add_argument("--train-store", type=Path, required=True)
    p.add_argument("--test", action="append", required=True, metavar="NAME=STORE")
    p.add_argument("--eval-dir", type=Path, required=True)
    p.add_argument("--recipe", type=Path, required=True)
    p.add_argument("--command", required=True, help="The `usvid train` command that made the checkpoint.")
    p.add_argument("--extract", action="append", default=[], help="The `usvid extract` commands of the stores.")
    args = p.parse_args()
    tests = dict(t.split("=", 1) for t in args.test)
    data = {**store_data(args.train_store), "extract_commands": args.extract,
            "test_stores": {n: store_data(Path(s)) for n, s in tests.items()}}
    for name, t in data["test_stores"].items():
        # A test image the model trained or was selected on would make the card's figures a lie.
        trained_on = {i.split(":", 1)[1] for s in ("train", "val") for i in data["video_ids"].get(s, [])
                      if i.startswith(f"{name}:")}
        leaked = trained_on & set(t.pop("video_ids").get("test", []))
        if leaked:
            raise SystemExit(f"{name}: {len(leaked)} test images are in the training store's train/val split, "
                             f"e.g. {sorted(leaked)[:3]}")
    recipe = {"file": str(args.recipe), "config": json.loads(args.recipe.read_text()), "command": args.command}
    model = package_model(args.checkpoint, args.name, summary=args.summary,
                          test_stores={n: Path(s) for n, s in tests.items()}, eval_dir=args.eval_dir,
                          data=data, recipe=recipe,
                          store_size=int(json.loads((args.train_store / "store.json").read_text())["size"]))
    print(json.dumps({k: model.card[k] for k in ("name", "files", "test", "onnx_parity")}, indent=1))


if __name__ == "__main__":
    main()
