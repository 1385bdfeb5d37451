"""``usvid models``: list the registered networks with their parameters and FLOPs."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from usvid.cli.common import handle_errors, next_step
from usvid.errors import InputError


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    from usvid.models.config import MAX_INPUT_SIZE

    if not sizes or any(s <= 0 or s % 32 or s > MAX_INPUT_SIZE for s in sizes):
        raise InputError(f"--sizes: expected comma-separated multiples of 32 from 32 to {MAX_INPUT_SIZE} such as "
                         f"256,512, got '{text}'")
    return sizes


@handle_errors
def models(
    sizes: str = typer.Option(
        "256,512", "--sizes", help="Square input sizes to count FLOPs at (multiples of 32)."
    ),
    match: str = typer.Option("", "--match", show_default="all",
                              help="Only list models whose name contains this text, or matches this glob (lanet*)."),
    latency: bool = typer.Option(
        False, "--latency", help="Also time a batch-1 256x256 CPU forward of each listed model on this machine."
    ),
    threads: int = typer.Option(None, "--threads", show_default="torch's", help="torch CPU threads for --latency."),
) -> None:
    """List registered models (parameters, GFLOPs: 2 per multiply-add, batch 1) and the shipped trained models."""
    from usvid.models import list_models, summarize_models

    sizes_px = _parse_sizes(sizes)
    glob = match if any(c in match for c in "*?[") else f"*{match}*"
    names = list_models(glob)
    if not names:
        how = "contains" if glob == f"*{match}*" else "matches"
        raise InputError(f"--match: no model name {how} '{match}'; models: {', '.join(list_models())}")
    table = Table(title="usvid models (FLOPs: 2 per multiply-add, batch 1)")
    columns = ["name", "arch", "FEX", "params (M)", *(f"GFLOPs @{s}" for s in sizes_px)]
    if latency:
        columns.append("CPU ms @256 (median)")
    for col in columns:
        table.add_column(col, justify="left" if col in ("name", "arch", "FEX") else "right")
    ms = _latency(names, threads) if latency else {}
    for s in summarize_models(names, sizes_px):
        gflops = (f"{s.gflops(z):.2f}" for z in sizes_px)
        extra = [f"{ms[s.name]:.1f}"] if latency else []
        table.add_row(s.name, s.arch, s.fex, f"{s.params / 1e6:.2f}", *gflops, *extra)
    Console().print(table)
    _print_shipped(match)
    next_step("usvid train STORE --model NAME --out RUN, or usvid predict VIDEOS --out PREDICTIONS "
              "(the shipped model)")


def _latency(names: list[str], threads: int | None) -> dict[str, float]:
    from usvid.models import measure_latency

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return measure_latency(names)


def _print_shipped(match: str) -> None:
    from usvid.shipped import shipped_models

    import fnmatch

    glob = match if any(c in match for c in "*?[") else f"*{match}*"
    shipped = [m for m in shipped_models() if fnmatch.fnmatchcase(m.name, glob)]
    if not shipped:
        return
    table = Table(title="shipped models: --model NAME (research use, not a medical device)")
    for col in ("name", "test", "n", "sens", "spec", "F1 mac", "AUC", "JSI"):
        table.add_column(col, justify="left" if col in ("name", "test") else "right", no_wrap=True)
    for m in shipped:
        for i, (split, t) in enumerate(m.card["test"].items()):
            table.add_row(m.name if i == 0 else "", split, str(t["images"]), *(f"{t[k]:.2f}" for k in (
                "sensitivity", "specificity", "f1_macro", "auc", "jsi_mask")))
    Console().print(table)
    for m in shipped:
        Console().print(f"{m.name}: {m.card.get('model')} at {m.card['preprocess']['size']} px, "
                        f"{m.card.get('summary', '')}")
    Console().print("sens/spec: the malignant class's, on each test split; F1 mac: macro-F1; JSI: lesion mask. "
                    "95% intervals, data and split: the README's model card and each model's model.json")

