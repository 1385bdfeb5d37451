"""Matrix-unit peaks of this CPU: fp32, bf16 and int8 matmul throughput at the thread counts usvid uses.

The reference every CPU figure in the other benchmarks is compared against (in the same run): what a large
square matmul reaches in each precision through torch (oneDNN / MKL) and, for int8, through onnxruntime's
MatMulInteger (the kernels usvid's int8 ONNX models run on). Records ``lscpu``'s model and the
matrix-relevant flags (avx512_bf16, avx512_vnni, amx_*), since our machines differ.

    .venv/bin/python benchmarks/cpu_peaks.py [--n 2048] [--threads 1,2] [--repeats 5]

Writes benchmarks/results/cpu_peaks.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import usvid
from usvid.cpu import cpu_info
from usvid.io import write_json_atomic

RESULTS = Path(__file__).parent / "results" / "cpu_peaks.json"


def cpu_description() -> dict:
    """The CPU's model name and matrix flags (as ``lscpu`` shows them: both read ``/proc/cpuinfo``), with the
    torch and usvid versions."""
    return {**cpu_info().describe(), "torch": torch.__version__, "usvid": usvid.__version__}


def _time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_peak(n: int, dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of an n x n x n matmul in ``dtype`` (int8 through ``torch._int_mm``, int32 accumulation)."""
    gen = torch.Generator().manual_seed(0)
    if dtype == torch.int8:
        a = torch.randint(-100, 100, (n, n), dtype=torch.int8, generator=gen)
        b = torch.randint(-100, 100, (n, n), dtype=torch.int8, generator=gen)
        seconds = _time(lambda: torch._int_mm(a, b), repeats)
    else:
        a = torch.randn(n, n, generator=gen).to(dtype)
        b = torch.randn(n, n, generator=gen).to(dtype)
        seconds = _time(lambda: torch.mm(a, b), repeats)
    return 2 * n**3 / seconds / 1e9


def ort_int8_peak(n: int, threads: int, repeats: int) -> float | None:
    """GFLOP/s (int8 ops) of onnxruntime's MatMulInteger, or None without onnxruntime."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    graph = helper.make_graph(
        [node],
        "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 255, (n, n), dtype=np.uint8), "b": rng.integers(-100, 100, (n, n), dtype=np.int8)}
    seconds = _time(lambda: session.run(None, feeds), repeats)
    return 2 * n**3 / seconds / 1e9


def measure(n: int, threads: list[int], repeats: int) -> list[dict]:
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        row = {"threads": count, "n": n}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8_torch", torch.int8)):
            try:
                row[f"{name}_gflops"] = round(torch_peak(n, dtype, repeats), 1)
            except RuntimeError as err:  # int8 mm is missing on some builds
                row[f"{name}_gflops"] = None
                row[f"{name}_error"] = str(err).splitlines()[0]
        ort_gflops = ort_int8_peak(n, count, repeats)
        row["int8_ort_gflops"] = None if ort_gflops is None else round(ort_gflops, 1)
        row["bf16_over_fp32"] = round(row["bf16_gflops"] / row["fp32_gflops"], 2)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| threads | fp32 GFLOP/s | bf16 GFLOP/s | bf16/fp32 | int8 torch GOP/s | int8 ORT GOP/s |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['fp32_gflops']} | {r['bf16_gflops']} | {r['bf16_over_fp32']} | "
                     f"{r['int8_torch_gflops']} | {r['int8_ort_gflops']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    result = {"machine": cpu_description(), "peaks": measure(args.n, threads, args.repeats)}
    write_json_atomic(RESULTS, result)
    print(json.dumps(result["machine"]))
    print(markdown(result["peaks"]))


if __name__ == "__main__":
    main()
