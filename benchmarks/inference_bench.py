"""Inference benchmark: every available backend, LA-Net R18/R50, 256/512 px, batch 1 latency and batch throughput.

Everything goes through the public API: a freshly initialised network (speed does not depend on the weights)
is saved as a checkpoint, exported with :func:`usvid.inference.export_onnx.export_onnx`, and run through
:func:`usvid.inference.load_predictor` on uint8 frames of ``--frame-size`` (default 854x500, the MBUD frame
size), so every figure INCLUDES preprocessing (resize from the full frame, normalise) and post-processing
(mask upsampled to the frame, largest region -> box). The split (pre / network / post) comes from the
predictor's own timing; "network fps" is the bare forward.

Reference measured in the same run: the machine's fp32 matrix-multiply rate (square n = 512, 1024, 2048 on the
same threads, the best of ``torch.matmul`` and onnxruntime's MatMul), the practical ceiling for
convolution-heavy networks. Each row reports FLOPs per frame
(2 per multiply-add, :func:`usvid.models.count_flops`) and the network's achieved GFLOP/s as a fraction of it.

Default run (< ~5 min on 2 cores): lanet_r18 and lanet_r50 at 256 and 512, batches 1 and 8, onnxruntime and
torch eager on the CPU, torch.compile for lanet_r18@256 only (CPU compiles take about a minute per shape).
On a CUDA machine it adds torch eager fp32, torch compiled fp16 + CUDA graphs, onnxruntime CUDA (when that
provider exists) and TensorRT FP16 (when installed). Results: benchmarks/results/inference.json and .md.

    python benchmarks/inference_bench.py                      # default
    python benchmarks/inference_bench.py --batches 1,8,32 --compile all   # the full matrix (long on CPU)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from usvid.models import count_flops, create_model

from usvid.checkpoint import checkpoint_from_model, save_checkpoint
from usvid.errors import MissingDependencyError
from usvid.inference import load_predictor
from usvid.inference.export_onnx import export_onnx
from usvid.inference.ort_backend import default_threads
from usvid.preprocess import PreprocessConfig

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = ["benign", "malignant"]
TARGET = {"backend": "onnxruntime-cpu", "model": "lanet_r18", "size": 256, "batch": 1, "fps": 50.0}


@dataclass
class Row:
    backend: str
    model: str
    size: int
    batch: int
    flops_per_frame: float
    e2e_ms_median: float
    e2e_ms_p10: float
    e2e_ms_p90: float
    preprocess_ms: float
    network_ms: float
    postprocess_ms: float
    repeats: int
    e2e_fps: float
    network_fps: float
    network_gflops: float
    fraction_of_matmul_peak: float
    setup_s: float


PEAK_SIZES = (512, 1024, 2048)


def torch_matmul_gflops(n: int, repeats: int = 20) -> float:
    """Best fp32 ``torch.matmul`` rate for ``n x n`` matrices on the benchmark's threads, GFLOP/s."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def ort_matmul_gflops(n: int, repeats: int = 20) -> float | None:
    """Best fp32 MatMul rate of onnxruntime's own kernels (MLAS), GFLOP/s; ``None`` without onnxruntime.

    Measured beside ``torch.matmul`` because MKL may not use every vector unit of a non-Intel CPU while
    MLAS does, so the higher of the two is the honest ceiling for the onnxruntime rows.
    """
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = default_threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"a": np.random.rand(n, n).astype(np.float32), "b": np.random.rand(n, n).astype(np.float32)}
    for _ in range(3):
        session.run(None, feed)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def cuda_matmul_gflops(dtype: torch.dtype, n: int = 8192, repeats: int = 10, tf32: bool = False) -> float:
    """Mean ``torch.matmul`` rate on the GPU for ``n x n`` matrices of ``dtype``, timed with CUDA events, GFLOP/s.

    ``tf32``: let fp32 products use TF32 tensor cores, as cuDNN convolutions do by default in PyTorch
    (``torch.backends.cudnn.allow_tf32``), which is how the fp32 rows run.
    """
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        return _cuda_matmul_gflops(dtype, n, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _cuda_matmul_gflops(dtype: torch.dtype, n: int, repeats: int) -> float:
    a = torch.rand(n, n, device="cuda", dtype=dtype)
    b = torch.rand(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e9


def matmul_peak(with_ort: bool, device: str = "cpu") -> dict:
    """Matrix-multiply peak of the device the networks run on, GFLOP/s.

    CPU: fp32, the best over sizes of torch and onnxruntime. CUDA: ``torch.matmul`` at n = 8192 in fp32
    with TF32 (``gflops_best``, the limit of the fp32 rows, whose convolutions cuDNN runs in TF32 by
    default; strict fp32 is reported beside it) and in fp16 (``gflops_fp16``, the limit of the fp16 rows).
    """
    if device == "cuda":
        strict = cuda_matmul_gflops(torch.float32)
        tf32 = cuda_matmul_gflops(torch.float32, tf32=True)
        fp16 = cuda_matmul_gflops(torch.float16)
        return {"device": torch.cuda.get_device_name(), "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                "torch_gflops": {"fp32_strict": strict, "fp32_tf32": tf32, "fp16": fp16},
                "onnxruntime_gflops": {}, "torch_gflops_best": tf32, "onnxruntime_gflops_best": None,
                "gflops_best": tf32, "gflops_fp16": fp16}
    torch_rates = {n: torch_matmul_gflops(n) for n in PEAK_SIZES}
    ort_rates = {n: ort_matmul_gflops(n) for n in PEAK_SIZES} if with_ort else {}
    ort_rates = {n: r for n, r in ort_rates.items() if r is not None}
    return {"torch_gflops": torch_rates, "onnxruntime_gflops": ort_rates,
            "torch_gflops_best": max(torch_rates.values()),
            "onnxruntime_gflops_best": max(ort_rates.values()) if ort_rates else None,
            "gflops_best": max([*torch_rates.values(), *ort_rates.values()])}


def time_predict(predictor, frames: torch.Tensor, warmup: int, min_repeats: int, min_seconds: float,
                 max_repeats: int) -> dict:
    """Median wall time of ``predictor.predict(frames)`` and its stage split, after warm-up."""
    for _ in range(warmup):
        predictor.predict(frames)
    walls, pre, net, post = [], [], [], []
    start = time.perf_counter()
    while len(walls) < max_repeats and (len(walls) < min_repeats or time.perf_counter() - start < min_seconds):
        t = time.perf_counter()
        pred = predictor.predict(frames)
        walls.append((time.perf_counter() - t) * 1e3)
        pre.append(pred.timing.preprocess_ms)
        net.append(pred.timing.inference_ms)
        post.append(pred.timing.postprocess_ms)
    q = statistics.quantiles(walls, n=10) if len(walls) >= 2 else [walls[0]] * 9
    return {"median": statistics.median(walls), "p10": q[0], "p90": q[-1], "pre": statistics.median(pre),
            "net": statistics.median(net), "post": statistics.median(post), "repeats": len(walls)}


def backends_for(device: str, want_compile: bool) -> list[tuple[str, dict, str]]:
    """``(label, load_predictor kwargs, model file kind)`` for every backend worth timing here.

    Rows with ``compile`` or ``spin`` are the expensive or secondary variants; with ``--compile first``
    they run for the first model and size at batch 1 only.
    """
    if device == "cpu":
        out = [("onnxruntime-cpu", {"device": "cpu"}, "onnx"), ("torch-eager-cpu", {"device": "cpu"}, "checkpoint")]
        if want_compile:
            out.append(("onnxruntime-cpu-spinning", {"device": "cpu", "spin": True}, "onnx"))
            out.append(("torch-compiled-cpu", {"device": "cpu", "compile": True}, "checkpoint"))
        return out
    out = [("torch-eager-fp32-cuda", {"device": "cuda", "precision": "fp32", "cuda_graphs": False}, "checkpoint"),
           ("torch-eager-fp16-cuda", {"device": "cuda", "precision": "fp16", "cuda_graphs": False}, "checkpoint"),
           ("torch-eager-fp16-cudagraphs", {"device": "cuda", "precision": "fp16", "cuda_graphs": True},
            "checkpoint")]
    if want_compile:
        out.append(("torch-compiled-fp16-cudagraphs", {"device": "cuda", "precision": "fp16", "compile": True,
                                                       "cuda_graphs": True}, "checkpoint"))
    try:
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            out.append(("onnxruntime-cuda", {"device": "cuda"}, "onnx"))
    except ImportError:
        pass
    try:
        import tensorrt  # noqa: F401

        out.append(("tensorrt-fp16", {"backend": "tensorrt", "precision": "fp16"}, "onnx16"))
    except ImportError:
        pass
    return out


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("onnxruntime", "onnx", "onnxscript", "tensorrt"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores_usable": default_threads(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "platform": platform.platform(), "load_average_at_start": os.getloadavg(), "versions": versions}


def markdown(rows: list[Row], peak: dict, meta: dict) -> str:
    head = ("| backend | model | size | batch | GFLOPs/frame | e2e ms (p10-p90) | pre / net / post ms | "
            "e2e fps | net fps | net GFLOP/s | % matmul peak |\n" + "|---" * 11 + "|")
    machine_line = f"Machine: {meta['cpu']}, {meta['cores_usable']} cores{', GPU ' + meta['gpu'] if meta['gpu'] else ''}; "
    if "gflops_fp16" in peak:
        rates = peak["torch_gflops"]
        machine_line += (f"GPU matmul peak (torch.matmul, n = 8192): fp32 with TF32 {rates['fp32_tf32'] / 1e3:.1f} "
                         f"TFLOP/s (strict fp32 {rates['fp32_strict'] / 1e3:.1f}), fp16 {rates['fp16'] / 1e3:.1f} "
                         "TFLOP/s. fp32 rows (cuDNN convolutions in TF32, PyTorch's default) are compared with the "
                         "TF32 peak, fp16 rows with the fp16 peak.")
    else:
        machine_line += (f"matmul peak {peak['gflops_best']:.1f} GFLOP/s (fp32, best over n = "
                         f"{', '.join(map(str, PEAK_SIZES))} of torch.matmul {peak['torch_gflops_best']:.1f} and "
                         f"onnxruntime MatMul {peak['onnxruntime_gflops_best'] or 0:.1f}).")
    lines = [machine_line, "", head]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.model} | {r.size} | {r.batch} | {r.flops_per_frame / 1e9:.2f} | "
            f"{r.e2e_ms_median:.1f} ({r.e2e_ms_p10:.1f}-{r.e2e_ms_p90:.1f}) | "
            f"{r.preprocess_ms:.1f} / {r.network_ms:.1f} / {r.postprocess_ms:.1f} | {r.e2e_fps:.1f} | "
            f"{r.network_fps:.1f} | {r.network_gflops:.1f} | {100 * r.fraction_of_matmul_peak:.0f}% |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="lanet_r18,lanet_r50")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--batches", default="1,8", help="1 = latency; larger = throughput (add 32 for the full run)")
    ap.add_argument("--compile", choices=("none", "first", "all"), default="first",
                    help="torch.compile rows: none, the first model/size at batch 1 only, or every row")
    ap.add_argument("--compile-batches", default="1", type=lambda v: [int(b) for b in v.split(",")],
                    help="with --compile first: the batch sizes the compiled rows run (each size compiles anew)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--frame-size", default="854x500", help="WxH of the uint8 frames fed to predict()")
    ap.add_argument("--min-seconds", type=float, default=1.5)
    ap.add_argument("--min-repeats", type=int, default=5)
    ap.add_argument("--max-repeats", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "inference.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    models, sizes = args.models.split(","), [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    fw, fh = (int(v) for v in args.frame_size.lower().split("x"))
    torch.set_num_threads(default_threads())
    meta = machine()
    t_start = time.perf_counter()
    peak = matmul_peak(with_ort=device == "cpu", device=device)
    print(f"matmul peak: torch {peak['torch_gflops_best']:.1f}, onnxruntime "
          f"{peak['onnxruntime_gflops_best'] or 0:.1f}, fp16 {peak.get('gflops_fp16') or 0:.1f} GFLOP/s",
          file=sys.stderr)
    rows: list[Row] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mi, model_name in enumerate(models):
            for si, size in enumerate(sizes):
                first = mi == 0 and si == 0
                backends = backends_for(device, args.compile == "all" or (args.compile == "first" and first))
                files = prepare_files(Path(tmp), model_name, size, {kind for _, _, kind in backends})
                flops = float(count_flops(create_model(model_name, num_classes=2).config, size))
                for label, kwargs, kind in backends:
                    t0 = time.perf_counter()
                    try:
                        predictor = load_predictor(files[kind], **kwargs)
                    except MissingDependencyError as err:
                        skipped.append(f"{label}: {err}")
                        continue
                    setup = time.perf_counter() - t0
                    compiled_once = ("compile" in kwargs or "spin" in kwargs) and args.compile == "first"
                    for batch in [b for b in batches if b in args.compile_batches] if compiled_once else batches:
                        frames = torch.randint(0, 256, (batch, 1, fh, fw), dtype=torch.uint8)
                        t0 = time.perf_counter()
                        stats = time_predict(predictor, frames, args.warmup, args.min_repeats, args.min_seconds,
                                             args.max_repeats)
                        net_fps = batch / (stats["net"] / 1e3)
                        limit = peak.get("gflops_fp16") if kwargs.get("precision") in ("fp16", "bf16") else None
                        row = Row(label, model_name, size, batch, flops, stats["median"], stats["p10"], stats["p90"],
                                  stats["pre"], stats["net"], stats["post"], stats["repeats"],
                                  batch / (stats["median"] / 1e3), net_fps, flops * net_fps / 1e9,
                                  flops * net_fps / 1e9 / (limit or peak["gflops_best"]), round(setup, 2))
                        rows.append(row)
                        print(f"{label:32s} {model_name} {size} b{batch}: {row.e2e_fps:7.1f} fps e2e, "
                              f"{row.network_fps:7.1f} net ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
                    del predictor
    target = next((r for r in rows if r.backend == TARGET["backend"] and r.model == TARGET["model"]
                   and r.size == TARGET["size"] and r.batch == TARGET["batch"]), None)
    result = {
        "benchmark": "inference", "machine": meta, "matmul_peak": peak, "frame_size": [fw, fh],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "target": {**TARGET, "measured_fps": target.e2e_fps if target else None,
                   "met": bool(target and target.e2e_fps >= TARGET["fps"])},
        "rows": [asdict(r) for r in rows], "skipped": skipped,
        "total_seconds": round(time.perf_counter() - t_start, 1), "load_average_at_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(rows, peak, meta)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    if target:
        print(f"target onnxruntime lanet_r18 @256 batch 1 incl. pre/post >= {TARGET['fps']:.0f} fps: "
              f"{target.e2e_fps:.1f} fps -> {'met' if result['target']['met'] else 'NOT met'}")
    for s in skipped:
        print(f"skipped {s}")
    print(f"total {result['total_seconds']} s; results in {args.out}")
    return 0


def prepare_files(tmp: Path, model_name: str, size: int, kinds: set[str]) -> dict[str, Path]:
    """A checkpoint, and the ONNX exports the chosen backends need (``onnx``; ``onnx16`` for TensorRT)."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=2).eval()
    ckpt = tmp / f"{model_name}_{size}.pt"
    save_checkpoint(ckpt, checkpoint_from_model(model, CLASSES, PreprocessConfig(size=size, store_size=size)))
    files = {"checkpoint": ckpt}
    if "onnx" in kinds:
        t0 = time.perf_counter()
        files["onnx"] = export_onnx(ckpt, tmp / f"{model_name}_{size}.onnx").path
        print(f"exported {model_name}@{size} to ONNX in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if "onnx16" in kinds:
        from usvid.inference.export_onnx import OnnxExportConfig

        files["onnx16"] = export_onnx(ckpt, tmp / f"{model_name}_{size}.fp16.onnx",
                                      OnnxExportConfig(precision="fp16")).path
    return files


if __name__ == "__main__":
    raise SystemExit(main())
