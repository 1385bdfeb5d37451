"""``usvid models``: list the registered networks with their parameters and FLOPs."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from usvid.cli.common import handle_errors
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
    match: str = typer.Option("", "--match", help="Only list models whose name contains this text."),
    latency: bool = typer.Option(
        False, "--latency", help="Also time a batch-1 256x256 CPU forward of each listed model on this machine."
    ),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads for --latency (default: torch's)."),
) -> None:
    """List registered models: parameters and GFLOPs (2 per multiply-add, batch 1) per input size."""
    from usvid.models import list_models, measure_latency, summarize_models

    sizes_px = _parse_sizes(sizes)
    names = [n for n in list_models() if match in n]
    if not names:
        raise InputError(f"--match: no model name contains '{match}'; models: {', '.join(list_models())}")
    table = Table(title="usvid models (FLOPs: 2 per multiply-add, batch 1)")
    columns = ["name", "arch", "FEX", "params (M)", *(f"GFLOPs @{s}" for s in sizes_px)]
    if latency:
        columns.append("CPU ms @256 (median)")
    for col in columns:
        table.add_column(col, justify="left" if col in ("name", "arch", "FEX") else "right")
    if latency and threads is not None:
        import torch

        torch.set_num_threads(threads)
    ms = measure_latency(names) if latency else {}
    for s in summarize_models(names, sizes_px):
        gflops = (f"{s.gflops(z):.2f}" for z in sizes_px)
        extra = [f"{ms[s.name]:.1f}"] if latency else []
        table.add_row(s.name, s.arch, s.fex, f"{s.params / 1e6:.2f}", *gflops, *extra)
    Console().print(table)
