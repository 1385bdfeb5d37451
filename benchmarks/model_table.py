"""Parameters and FLOPs of every model variant (and the LA-Net ablations) at 256 and 512, plus CPU latency.

Latency: batch 1, 256x256, eval + inference_mode, warm-up then repeats taken round-robin over the models;
median and spread (min, p25, p75, max). torchvision's own ResNet-18/50 (3 channels, 1000 classes) are timed
in the same run as the reference
for "what the LA-Net branch costs on this machine".

    .venv/bin/python benchmarks/model_table.py [--repeats 30] [--threads 2] [--skip-latency]
    .venv/bin/python benchmarks/model_table.py --models effl0_cls --sizes 64 --latency-size 64 --repeats 3

Writes benchmarks/results/models.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

import usvid
from usvid.io import write_json_atomic
from usvid.models import create_model, list_models, model_config, summarize_config

SIZES = (256, 512)
ABLATIONS = {
    "no_cam": {"use_cam": False},
    "no_sam": {"use_sam": False},
    "no_mam": {"use_mam": False},
    "shared_cbam": {"cbam_mode": "shared"},
    "sam_7x7": {"spatial_kernel": "7x7"},
    "area_pool": {"fusion_pool": "area"},
}
LATENCY_MODELS = [
    "resnet18_cls", "lanet_r18", "rmtl_r18", "resnet50_cls", "lanet_r50", "rmtl_r50",
    "effl0_cls", "lanet_effl0", "rmtl_effl0", "effl2_cls", "lanet_effl2",
]
ABLATION_BASES = ("lanet_r18", "lanet_r50", "lanet_effl0")
REFERENCES: dict[str, Callable[[], torch.nn.Module]] = {
    "torchvision resnet18 (3ch, 1000 cls)": torchvision.models.resnet18,
    "torchvision resnet50 (3ch, 1000 cls)": torchvision.models.resnet50,
}


def machine() -> dict:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "logical_cpus": torch.multiprocessing.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "usvid": usvid.__version__,
        "platform": platform.platform(),
        "cpu_flags": _cpu_flags(),
    }


def _cpu_flags() -> str:
    """``lscpu``'s Flags line: which matrix/vector units (AVX-512 VNNI/BF16, AMX) the latency figures had."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Flags")), "")


def cost_rows(names: list[str], sizes: tuple[int, ...] = SIZES) -> list[dict]:
    rows = [summarize_config(name, model_config(name), sizes).to_dict() for name in names]
    for base in (b for b in ABLATION_BASES if b in names):
        for tag, overrides in ABLATIONS.items():
            rows.append(summarize_config(f"{base}:{tag}", model_config(base, **overrides), sizes).to_dict())
    return rows


def _summary(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "p25_ms": q[0],
        "p75_ms": q[2],
        "max_ms": max(times),
        "repeats": len(times),
    }


def latency_rows(warmup: int, repeats: int, names: list[str] = LATENCY_MODELS, size: int = 256) -> list[dict]:
    """Time models round-robin (one forward each per round) so other processes' load hits all alike."""
    torch.manual_seed(0)
    cases = [(name, create_model(name).eval(), torch.rand(1, 1, size, size)) for name in names]
    cases += [(name, build().eval(), torch.rand(1, 3, size, size)) for name, build in REFERENCES.items()]
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    with torch.inference_mode():
        for _, model, x in cases:
            for _ in range(warmup):
                model(x)
        for _ in range(repeats):
            for name, model, x in cases:
                start = time.perf_counter()
                model(x)
                times[name].append((time.perf_counter() - start) * 1e3)
    return [{"name": name, **_summary(t)} for name, t in times.items()]


def markdown(costs: list[dict], latency: list[dict], latency_size: int = 256) -> str:
    sizes = list(costs[0]["flops"]) if costs else []
    lines = [
        "| model | FEX | params (M) | " + " | ".join(f"GFLOPs @{z}" for z in sizes) + " |",
        "|---|---|---:|" + "---:|" * len(sizes),
    ]
    for r in costs:
        gflops = " | ".join(f"{r['flops'][z] / 1e9:.2f}" for z in sizes)
        lines.append(f"| {r['name']} | {r['fex']} | {r['params'] / 1e6:.2f} | {gflops} |")
    if latency:
        lines += [
            "",
            f"| CPU latency, batch 1, {latency_size}x{latency_size} | median ms | p25-p75 ms | min-max ms |",
            "|---|---:|---:|---:|",
        ]
        for r in latency:
            lines.append(
                f"| {r['name']} | {r['median_ms']:.1f} | {r['p25_ms']:.1f}-{r['p75_ms']:.1f} | "
                f"{r['min_ms']:.1f}-{r['max_ms']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--models", default="", help="comma-separated variants (default: all)")
    parser.add_argument("--sizes", default="256,512", help="square sizes to count FLOPs at")
    parser.add_argument("--latency-size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "models.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = [n for n in args.models.split(",") if n]
    sizes = tuple(int(v) for v in args.sizes.split(","))
    costs = cost_rows(chosen or list_models(), sizes)
    timed = chosen or LATENCY_MODELS
    latency = [] if args.skip_latency else latency_rows(args.warmup, args.repeats, timed, args.latency_size)
    write_json_atomic(
        args.out,
        {
            "machine": machine(),
            "flops_note": "FlopCounterMode: 2 FLOPs per multiply-add (conv/deconv/matmul); batch 1; square",
            "sizes": list(sizes),
            "latency_note": f"CPU, eval, inference_mode, batch 1, {args.latency_size}x{args.latency_size}, "
            "float32; references: torchvision",
            "models": costs,
            "latency": latency,
        },
    )
    print(markdown(costs, latency, args.latency_size))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
