"""End-to-end CPU inference in every precision, against the matrix peaks of the same run, with parity.

For each model: torch fp32, torch bf16 (CPUs with bf16 units), onnxruntime fp32 and onnxruntime static int8
(``usvid export --int8``, calibrated on the store's train split), each through the public
``load_predictor(...).predict`` on uint8 frames of ``--frame-size`` (854x500, the MBUD frame size), so every
figure includes preprocessing (letterbox, normalise) and post-processing (mask to frame, box). Batch 1 and 8;
the paths alternate in ``--rounds`` rounds so a busy moment of the machine hits them alike, and each row is
the median over rounds of the per-round medians.

In the same run: the fp32 and bf16 matmul peaks (torch, n = 2048) and the int8 peak (onnxruntime
MatMulInteger, the kernels the int8 graph runs on), at the same thread count; each row's network GFLOP/s is
given as a share of the peak of its own precision. Parity: every reduced path against torch fp32 on the
store's test frames (neither calibrated nor checked on by the int8 export): class agreement on decisive frames
(fp32 top-two margin >= 0.1), pooled mask IoU at 0.5, and each path's accuracy against the store's labels.
And what ``--backend auto`` picks for that checkpoint on this machine (:mod:`usvid.inference.autoselect`).

Models: ``--checkpoint`` (default the shipped ``lanet-effl0-bus``, a trained LA-Net-EffL0 at 256 px) and
``--random lanet_r18`` (a seeded random network at the same size: speed only, its parity says nothing).

    .venv/bin/python benchmarks/cpu_e2e_bench.py --store STORE [--keep DIR]

STORE: a frame store at the models' size, e.g. ``usvid extract ../shared/data/busi STORE --size 256``.

Writes benchmarks/results/cpu_e2e.json and .md. Records ``lscpu``'s model and matrix flags.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cpu_peaks import cpu_description, ort_int8_peak, torch_peak
from inference_bench import ort_matmul_gflops, time_predict

from usvid.checkpoint import checkpoint_from_model, load_checkpoint, save_checkpoint
from usvid.data.store import FrameStore
from usvid.inference import autoselect, load_predictor
from usvid.inference.export_onnx import export_onnx
from usvid.inference.quantize import Int8Config, quantize_int8, store_frames
from usvid.io import write_json_atomic, write_text_atomic

RESULTS = Path(__file__).parent / "results"
SHIPPED = Path(__file__).resolve().parents[1] / "usvid" / "weights" / "lanet-effl0-bus" / "model.pt"
PEAK_OF = {"fp32": "fp32", "bf16": "bf16", "int8": "int8"}


def peaks(threads: int, n: int = 2048, repeats: int = 5) -> dict:
    """fp32: the better of torch.mm and onnxruntime's MatMul (MKL may leave AVX-512 unused on AMD CPUs, MLAS
    does not); bf16: torch.mm (oneDNN); int8: onnxruntime MatMulInteger. G(FL)OP/s at ``threads``."""
    torch.set_num_threads(threads)
    fp32_torch = torch_peak(n, torch.float32, repeats)
    fp32_ort = ort_matmul_gflops(n, repeats)
    int8 = ort_int8_peak(n, threads, repeats)
    return {"fp32_gflops": round(max(fp32_torch, fp32_ort or 0.0), 1),
            "fp32_torch_gflops": round(fp32_torch, 1),
            "fp32_ort_gflops": None if fp32_ort is None else round(fp32_ort, 1),
            "bf16_gflops": round(torch_peak(n, torch.bfloat16, repeats), 1),
            "int8_gflops": None if int8 is None else round(int8, 1), "n": n, "threads": threads}


def random_checkpoint(tmp: Path, name: str, size: int) -> Path:
    from usvid.models import create_model
    from usvid.preprocess import PreprocessConfig

    torch.manual_seed(0)
    path = tmp / f"{name}_{size}_random.pt"
    model = create_model(name, num_classes=2).eval()
    save_checkpoint(path, checkpoint_from_model(model, ["benign", "malignant"],
                                                PreprocessConfig(size=size, store_size=size)))
    return path


def path_files(tmp: Path, ckpt: Path, store: Path) -> dict[str, tuple[Path, dict]]:
    """``{path name: (model file, load_predictor kwargs)}`` for every path this machine can run."""
    from usvid.cpu import cpu_info

    onnx = export_onnx(ckpt, tmp / f"{ckpt.stem}.onnx").path
    files = {"torch-fp32": (ckpt, {"backend": "torch", "precision": "fp32"})}
    if cpu_info().bf16:
        files["torch-bf16"] = (ckpt, {"backend": "torch", "precision": "bf16"})
    files["onnxruntime-fp32"] = (onnx, {"backend": "onnxruntime"})
    t0 = time.perf_counter()
    try:
        int8 = quantize_int8(ckpt, tmp / f"{ckpt.stem}.int8.onnx", Int8Config(calibration=store))
        files["onnxruntime-int8"] = (int8.path, {"backend": "onnxruntime"})
        print(f"int8 export of {ckpt.name} in {time.perf_counter() - t0:.0f} s: {int8.report.describe()}",
              file=sys.stderr)
    except Exception as err:  # a failed int8 check is a result to report, not a crash
        print(f"int8 export of {ckpt.name} refused: {err}", file=sys.stderr)
    return files


def parity(predictors: dict, store: Path, frames: int) -> dict[str, dict]:
    images, labels = store_frames(FrameStore(store), "test", frames, seed=2)
    x = torch.from_numpy(images).unsqueeze(1)
    preds = {name: p.predict(x) for name, p in predictors.items()}
    ref = preds["torch-fp32"]
    out = {}
    for name, pred in preds.items():
        share, iou = autoselect.agreement(ref, pred)
        names = list(pred.class_names)
        acc = float(np.mean([names[i] == lab for i, lab in zip(pred.class_indices.tolist(), labels)]))
        out[name] = {"frames": len(images), "class_agreement_decisive": round(share, 4),
                     "mask_iou": None if iou is None else round(iou, 4),
                     "max_prob_diff": round(float((pred.probs - ref.probs).abs().max()), 5),
                     "accuracy": round(acc, 4)}
    return out


def speed(predictors: dict, batches: list[int], frame_size: tuple[int, int], rounds: int,
          seconds: float) -> dict:
    fw, fh = frame_size
    out: dict[str, dict] = {}
    for batch in batches:
        gen = torch.Generator().manual_seed(0)
        frames = torch.randint(0, 256, (batch, 1, fh, fw), dtype=torch.uint8, generator=gen)
        per: dict[str, list[dict]] = {name: [] for name in predictors}
        for _ in range(rounds):
            for name, predictor in predictors.items():
                per[name].append(time_predict(predictor, frames, 3, 5, seconds, 400))
        for name, stats in per.items():
            e2e = statistics.median(s["median"] for s in stats)
            net = statistics.median(s["net"] for s in stats)
            out.setdefault(name, {})[str(batch)] = {
                "e2e_ms": round(e2e, 2), "e2e_ms_rounds": [round(s["median"], 2) for s in stats],
                "pre_ms": round(statistics.median(s["pre"] for s in stats), 2), "net_ms": round(net, 2),
                "post_ms": round(statistics.median(s["post"] for s in stats), 2),
                "e2e_fps": round(batch / (e2e / 1e3), 1), "net_fps": round(batch / (net / 1e3), 1)}
            print(f"{name:18s} b{batch}: {out[name][str(batch)]['e2e_fps']:6.1f} fps e2e", file=sys.stderr)
    return out


def auto_choice(ckpt: Path, tmp: Path) -> dict:
    os.environ["USVID_CACHE_DIR"] = str(tmp / "cache")
    os.environ["USVID_AUTOSELECT"] = "1"
    selection, _ = autoselect.select_cpu_path(ckpt)
    return {"chosen": selection.chosen, "describe": selection.describe()}


def bench_model(label: str, ckpt: Path, store: Path, args, tmp: Path, peak: dict) -> dict:
    from usvid.models import ModelConfig, count_flops

    checkpoint = load_checkpoint(ckpt)
    size = checkpoint.preprocess.size
    gflop = count_flops(ModelConfig.from_dict(checkpoint.model_config), size) / 1e9
    files = path_files(tmp, ckpt, store)
    predictors = {name: load_predictor(path, device="cpu", **kw) for name, (path, kw) in files.items()}
    result = {"label": label, "checkpoint": str(ckpt), "size": size, "gflop_per_frame": round(gflop, 3),
              "parity": parity(predictors, store, args.parity_frames),
              "speed": speed(predictors, args.batches, args.frame_size, args.rounds, args.seconds),
              "auto": auto_choice(ckpt, tmp)}
    for name, per_batch in result["speed"].items():
        precision = name.rsplit("-", 1)[1]
        ref = peak.get(f"{PEAK_OF[precision]}_gflops")
        for row in per_batch.values():
            row["net_gflops"] = round(row["net_fps"] * gflop, 1)
            row["share_of_own_peak"] = None if not ref else round(row["net_gflops"] / ref, 3)
    return result


def markdown(out: dict) -> str:
    m, p = out["machine"], out["peaks"]
    lines = [f"Machine: {m['model']}, {m['logical_cpus']} logical CPUs, flags {' '.join(m['matrix_flags'])}; "
             f"{p['threads']} threads. Peaks in this run (n = {p['n']}): fp32 {p['fp32_gflops']}, bf16 "
             f"{p['bf16_gflops']}, int8 {p['int8_gflops']} G(FL)OP/s (fp32: best of torch.mm "
             f"{p['fp32_torch_gflops']} and onnxruntime MatMul {p['fp32_ort_gflops']}).", ""]
    for model in out["models"]:
        lines += [f"### {model['label']} at {model['size']} px ({model['gflop_per_frame']} GFLOP/frame); "
                  f"auto picks {model['auto']['chosen']}", "",
                  "| path | batch | e2e ms/call | pre / net / post ms | e2e fps | net GFLOP/s | "
                  "share of own peak | class agreement | mask IoU | accuracy |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, per_batch in model["speed"].items():
            par = model["parity"][name]
            for batch, r in per_batch.items():
                share = "-" if r["share_of_own_peak"] is None else f"{100 * r['share_of_own_peak']:.0f}%"
                split = f"{r['pre_ms']} / {r['net_ms']} / {r['post_ms']}"
                lines.append(f"| {name} | {batch} | {r['e2e_ms']} | {split} | {r['e2e_fps']} | "
                             f"{r['net_gflops']} | {share} | {par['class_agreement_decisive']} | "
                             f"{par['mask_iou']} | {par['accuracy']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True,
                    help="frame store at the models' size (calibration, parity)")
    ap.add_argument("--checkpoint", type=Path, default=SHIPPED)
    ap.add_argument("--random", default="lanet_r18", help="comma-separated random networks ('' for none)")
    ap.add_argument("--batches", type=lambda v: [int(b) for b in v.split(",")], default=[1, 8])
    ap.add_argument("--frame-size", type=lambda v: tuple(int(x) for x in v.split("x")), default=(854, 500))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--parity-frames", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "cpu_e2e.json")
    ap.add_argument("--keep", type=Path,
                    help="keep the exported models here (e.g. for stream_bench.py --model)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"machine": cpu_description(), "peaks": peaks(args.threads), "frame_size": list(args.frame_size),
           "rounds": args.rounds, "models": []}
    size = load_checkpoint(args.checkpoint).preprocess.size
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        trained = load_checkpoint(args.checkpoint).trained_model_name or args.checkpoint.stem
        models = [(f"trained {trained}", args.checkpoint)]
        models += [(f"random {n}", random_checkpoint(tmp, n, size)) for n in args.random.split(",") if n]
        for label, ckpt in models:
            out["models"].append(bench_model(label, ckpt, args.store, args, tmp, out["peaks"]))
    out["peaks_after"] = peaks(args.threads)
    write_json_atomic(args.out, out)
    write_text_atomic(args.out.with_suffix(".md"), markdown(out) + "\n")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
