"""Does ``torch.compile`` pay for itself within an epoch of CPU training?

Per model at 256 px, the bare training step of ``usvid train --device cpu`` (the chosen compute path: bf16
autocast + channels-last on CPUs with bf16 units; forward, L_hyb, backward, AdamW; batches read and augmented
beforehand, as in ``cpu_train_bench.py``) eager and under ``torch.compile`` (inductor), in the same run:

- the compile cost: the compiled arm's first steps minus as many steady eager steps (tracing and code
  generation for forward and backward);
- steady step time of each (median over ``--rounds`` interleaved rounds of ``--steps`` steps);
- break-even: compile cost / time saved per step, against the steps of one epoch of BUSI + BUS-BRA at the
  model's batch size (``--epoch-frames``, default 1,500 training frames with undersampling off).

    .venv/bin/python benchmarks/cpu_compile_bench.py [--models lanet_r18,lanet_effl0] [--steps 4] [--rounds 3]

Writes benchmarks/results/cpu_compile.json and prints a markdown table. Records ``lscpu``'s model and flags.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from cpu_peaks import cpu_description
from cpu_train_bench import _arm, _bare_step, augmented_batches
from train_bench import synthetic_store

from usvid.io import write_json_atomic
from usvid.training.frames import open_store

RESULTS = Path(__file__).parent / "results" / "cpu_compile.json"


def _run(model, optimizer, batches, cfg, amp_dtype) -> list[float]:
    times = []
    for batch in batches:
        t0 = time.perf_counter()
        _bare_step(model, optimizer, batch, cfg, amp_dtype)
        times.append(time.perf_counter() - t0)
    return times


def measure_model(store_path: Path, name: str, args) -> dict:
    store = open_store(store_path)
    eager = _arm(store, name, args.size, args.steps, channels_last=True, amp=True)
    compiled = _arm(store, name, args.size, args.steps, channels_last=True, amp=True)
    cfg, _, model_e, opt_e, _, compute = eager
    _, _, model_c, opt_c, _, _ = compiled
    model_c = torch.compile(model_c)
    batches = augmented_batches(store, eager)
    _run(model_e, opt_e, batches[:1], cfg, compute.amp_dtype)  # eager warm-up (oneDNN primitive caches)
    first = _run(model_c, opt_c, batches, cfg, compute.amp_dtype)  # includes tracing and code generation
    steady: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        steady["eager"].append(statistics.median(_run(model_e, opt_e, batches, cfg, compute.amp_dtype)))
        steady["compiled"].append(statistics.median(_run(model_c, opt_c, batches, cfg, compute.amp_dtype)))
    eager_s, compiled_s = (statistics.median(v) for v in (steady["eager"], steady["compiled"]))
    compile_cost = sum(first) - len(first) * compiled_s
    saved = eager_s - compiled_s
    epoch_steps = args.epoch_frames // cfg.batch_size
    break_even = None if saved <= 0 else compile_cost / saved
    return {"model": name, "size": args.size, "batch_size": cfg.batch_size, "compute": compute.to_dict(),
            "threads": torch.get_num_threads(), "compile_cost_s": round(compile_cost, 1),
            "eager_step_s": round(eager_s, 4), "compiled_step_s": round(compiled_s, 4),
            "eager_step_s_rounds": [round(v, 4) for v in steady["eager"]],
            "compiled_step_s_rounds": [round(v, 4) for v in steady["compiled"]],
            "speedup": round(eager_s / compiled_s, 3), "epoch_steps": epoch_steps,
            "break_even_steps": None if break_even is None else round(break_even),
            "pays_within_epoch": break_even is not None and break_even <= epoch_steps}


def markdown(out: dict) -> str:
    m = out["machine"]
    lines = [f"Machine: {m['model']}, flags {' '.join(m['matrix_flags'])}.", "",
             "| model | batch | eager step s | compiled step s | speedup | compile cost s | "
             "break-even steps | steps per epoch | pays within an epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['eager_step_s']} | {r['compiled_step_s']} | "
                     f"{r['speedup']} | {r['compile_cost_s']} | {r['break_even_steps']} | "
                     f"{r['epoch_steps']} | "
                     f"{'yes' if r['pays_within_epoch'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="lanet_r18,lanet_effl0")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epoch-frames", type=int, default=1500)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp), args.size)
        rows = [measure_model(store, name, args) for name in args.models.split(",")]
    out = {"machine": cpu_description(), "rows": rows}
    write_json_atomic(args.out, out)
    print(markdown(out))


if __name__ == "__main__":
    main()
