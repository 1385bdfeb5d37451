"""Network forward on the CPU in fp32 and bf16, NCHW and channels-last, batch 1 and 8 (torch eager, the
``TorchPredictor`` module), with the bf16 outputs' agreement with fp32 on the same inputs.

Forward only (no preprocessing, no boxes): what the torch backend's precision and memory-format choice changes.
Random weights and inputs: speed does not depend on the weights; agreement on random inputs is a smoke check,
not the parity check on real frames. Records ``lscpu``'s model and flags and the matmul peaks in the same run.

    .venv/bin/python benchmarks/cpu_precision_bench.py [--models lanet_r18,lanet_effl0] [--size 256]

Writes benchmarks/results/cpu_precision.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from cpu_peaks import cpu_description, torch_peak
from usvid.models import create_model

from usvid.inference.torch_backend import InferenceModel
from usvid.io import write_json_atomic

RESULTS = Path(__file__).parent / "results" / "cpu_precision.json"


def _ms_per_frame(module, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            module(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / x.shape[0]


def measure(name: str, size: int, batch: int) -> list[dict]:
    torch.manual_seed(0)
    net = create_model(name, num_classes=2, in_channels=1).eval()
    x = torch.rand(batch, 1, size, size)
    rows, reference = [], None
    for dtype in (torch.float32, torch.bfloat16):
        for channels_last in (False, True):
            module = InferenceModel(create_model(name, num_classes=2, in_channels=1).eval(), dtype)
            module.model.load_state_dict(net.state_dict())
            module.model.to(dtype)
            inp = x
            if channels_last:
                module = module.to(memory_format=torch.channels_last)
                inp = x.contiguous(memory_format=torch.channels_last)
            ms = _ms_per_frame(module, inp, 10 if batch == 1 else 4)
            with torch.inference_mode():
                probs, mask = module(inp)
            if reference is None:
                reference = (probs, mask)
            agree = float((probs.argmax(1) == reference[0].argmax(1)).float().mean())
            rows.append({"model": name, "batch": batch, "precision": str(dtype).removeprefix("torch."),
                         "channels_last": channels_last, "ms_per_frame": ms,
                         "max_prob_diff_vs_fp32": float((probs - reference[0]).abs().max()),
                         "max_mask_diff_vs_fp32": float((mask - reference[1]).abs().max()),
                         "class_agreement_vs_fp32": agree})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lanet_r18,lanet_effl0")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    peaks = {"fp32_gflops": torch_peak(2048, torch.float32, 5), "bf16_gflops": torch_peak(2048, torch.bfloat16, 5)}
    result = {"machine": cpu_description(), "threads": torch.get_num_threads(), "peaks": peaks, "rows": []}
    for name in args.models.split(","):
        for batch in (1, 8):
            result["rows"].extend(measure(name, args.size, batch))
            write_json_atomic(args.out, result)
    print(f"machine: {result['machine']['model']} {result['machine']['matrix_flags']}, {result['threads']} threads; "
          f"peaks fp32 {peaks['fp32_gflops']:.0f}, bf16 {peaks['bf16_gflops']:.0f} GFLOP/s")
    print("| model | batch | precision | channels-last | ms/frame | max prob diff vs fp32 | max mask diff |")
    print("|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['model']} | {r['batch']} | {r['precision']} | {r['channels_last']} | {r['ms_per_frame']:.1f} | "
              f"{r['max_prob_diff_vs_fp32']:.3g} | {r['max_mask_diff_vs_fp32']:.3g} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
