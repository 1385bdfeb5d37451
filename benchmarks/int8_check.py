"""Int8 vs fp32 onnxruntime on the CPU for a trained checkpoint: speed with pre/post-processing, and agreement.

In one run: the checkpoint is exported to fp32 ONNX and to static int8 ONNX (``usvid export --int8``,
calibrated on the store's train split and checked on its val split), then

* speed: ``load_predictor(...).predict`` on uint8 frames of ``--frame-size`` (854x500, the MBUD frame size),
  batch 1 (and ``--batches``), fp32 and int8 alternating in rounds so load swings hit both alike; the split
  pre / network / post comes from the predictor's timing;
* agreement on the store's test split (frames neither calibrated nor checked on): class agreement, max
  probability difference, pooled mask IoU at 0.5, and accuracy of each against the store's labels.

The speed target it reports against is issue 6's: onnxruntime LA-Net-R18 at 256 px >= 50 frames/s at batch 1
including pre- and post-processing, on this 2-core CPU.

    .venv/bin/python benchmarks/int8_check.py --checkpoint RUN/best.pt --store STORE [--out results/int8.json]

Real data: ``benchmarks/busi_real.py`` trains LA-Net-R18 on BUSI and leaves ``best.pt`` and the store.
Without ``--checkpoint`` a seeded random LA-Net-R18 and a small synthetic store are used: speed only (the
agreement of a random network says nothing about a trained one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from inference_bench import machine, time_predict

from usvid.checkpoint import load_checkpoint
from usvid.inference import load_predictor
from usvid.inference.export_onnx import export_onnx, run_onnx
from usvid.inference.ort_backend import default_threads
from usvid.inference.quantize import Int8Config, compare_int8, network_input, quantize_int8, store_frames
from usvid.inference.torch_backend import InferenceModel

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_FPS = 50.0


def synthetic_setup(tmp: Path) -> tuple[Path, Path]:
    """A seeded random LA-Net-R18 checkpoint at 256 px and a small synthetic store to calibrate on."""
    from usvid.checkpoint import checkpoint_from_model, save_checkpoint
    from usvid.data.extract import ExtractConfig, extract
    from usvid.data.splits import SplitFractions
    from usvid.models import create_model
    from usvid.preprocess import PreprocessConfig
    from usvid.synth.config import SynthConfig
    from usvid.synth.dataset import generate_dataset

    torch.manual_seed(0)
    ckpt = tmp / "lanet_r18_256.pt"
    save_checkpoint(ckpt, checkpoint_from_model(create_model("lanet_r18", num_classes=2), ["benign", "malignant"],
                                                PreprocessConfig(size=256, store_size=256)))
    generate_dataset(tmp / "synth", SynthConfig(patients=8, seconds=1.0, width=320, height=240, seed=0))
    extract(tmp / "synth" / "manifest.csv", tmp / "store", ExtractConfig(size=256, split=SplitFractions(0.5, 0.25, 0.25)))
    return ckpt, tmp / "store"


def agreement_on(split: str, ckpt_path: Path, int8: Path, store_path: Path, frames: int, config: Int8Config) -> dict:
    from usvid.data.store import FrameStore

    ckpt = load_checkpoint(ckpt_path)
    images, labels = store_frames(FrameStore(store_path), split, frames, seed=2)
    if len(images) == 0:
        return {"split": split, "frames": 0}
    x = network_input(images, ckpt.preprocess)
    with torch.inference_mode():
        ref = InferenceModel(ckpt.build_model(), torch.float32)(x)
    known = set(labels) <= set(ckpt.class_names)
    ys = [list(ckpt.class_names).index(n) for n in labels] if known else None
    report = compare_int8(ref, run_onnx(int8, x), ys, config, split)
    return {"split": split, **{k: v for k, v in vars(report).items() if k not in ("min_agreement", "min_mask_iou")},
            "describe": report.describe()}


def speed(files: dict[str, Path], batches: list[int], frame_size: tuple[int, int], rounds: int,
          seconds: float) -> list[dict]:
    fw, fh = frame_size
    predictors = {name: load_predictor(path, "onnxruntime", "cpu") for name, path in files.items()}
    rows = []
    for batch in batches:
        frames = torch.randint(0, 256, (batch, 1, fh, fw), dtype=torch.uint8)
        per: dict[str, list[dict]] = {name: [] for name in predictors}
        for _ in range(rounds):  # alternate, so a busy moment of the machine hits both
            for name, predictor in predictors.items():
                per[name].append(time_predict(predictor, frames, 3, 5, seconds, 400))
        for name, stats in per.items():
            e2e = statistics.median(s["median"] for s in stats)
            net = statistics.median(s["net"] for s in stats)
            rows.append({"model": name, "batch": batch, "e2e_ms_median": round(e2e, 2),
                         "e2e_ms_rounds": [round(s["median"], 2) for s in stats],
                         "preprocess_ms": round(statistics.median(s["pre"] for s in stats), 2),
                         "network_ms": round(net, 2),
                         "postprocess_ms": round(statistics.median(s["post"] for s in stats), 2),
                         "e2e_fps": round(batch / (e2e / 1e3), 1), "network_fps": round(batch / (net / 1e3), 1)})
            print(f"{name:5s} b{batch}: {rows[-1]['e2e_fps']:6.1f} fps e2e ({e2e:.1f} ms), "
                  f"net {rows[-1]['network_fps']:.1f} fps", file=sys.stderr)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="trained checkpoint (default: random LA-Net-R18, speed only)")
    ap.add_argument("--store", type=Path, help="frame store with train / val / test splits (needed with --checkpoint)")
    ap.add_argument("--calibration-frames", type=int, default=128)
    ap.add_argument("--test-frames", type=int, default=1000)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--frame-size", default="854x500")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per model, batch and round")
    ap.add_argument("--out", type=Path, default=RESULTS / "int8.json")
    args = ap.parse_args()
    if (args.checkpoint is None) != (args.store is None):
        raise SystemExit("give --checkpoint and --store together (or neither, for a speed-only run)")
    torch.set_num_threads(default_threads())
    fw, fh = (int(v) for v in args.frame_size.lower().split("x"))
    meta = machine()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        real = args.checkpoint is not None
        ckpt, store = (args.checkpoint, args.store) if real else synthetic_setup(tmp)
        # A random network has no decisive frames worth checking: the speed-only run lifts the limits.
        config = Int8Config(calibration=store, calibration_frames=args.calibration_frames,
                            **({} if real else {"min_agreement": 1e-9, "min_mask_iou": 0.0}))
        fp32 = export_onnx(ckpt, tmp / "fp32.onnx").path
        t0 = time.perf_counter()
        int8 = quantize_int8(ckpt, tmp / "int8.onnx", config)
        quantize_s = time.perf_counter() - t0
        print(f"int8 export in {quantize_s:.0f} s: {int8.report.describe()}", file=sys.stderr)
        test = agreement_on("test", ckpt, int8.path, store, args.test_frames, config) if real else None
        if test:
            print(f"test split: {test['describe']}", file=sys.stderr)
        rows = speed({"fp32": fp32, "int8": int8.path}, [int(b) for b in args.batches.split(",")], (fw, fh),
                     args.rounds, args.seconds)
        sizes = {"fp32_mib": round(fp32.stat().st_size / 2**20, 1), "int8_mib": round(int8.path.stat().st_size / 2**20, 1)}
    b1 = next(r for r in rows if r["model"] == "int8" and r["batch"] == 1)
    result = {
        "benchmark": "int8", "machine": meta, "checkpoint": str(args.checkpoint) if args.checkpoint else "random lanet_r18",
        "store": str(args.store) if args.store else "synthetic", "frame_size": [fw, fh],
        "calibration_frames": args.calibration_frames, "quantize_seconds": round(quantize_s, 1), "file_sizes": sizes,
        "export_check": {k: v for k, v in vars(int8.report).items()} if real else None,
        "test_agreement": test, "speed": rows,
        "target": {"fps": TARGET_FPS, "int8_b1_e2e_fps": b1["e2e_fps"], "met": b1["e2e_fps"] >= TARGET_FPS},
        "total_seconds": round(time.perf_counter() - t_start, 1), "load_average_at_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({"speed": rows, "test": test and test["describe"], "target": result["target"]}, indent=1))
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
