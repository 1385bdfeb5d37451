"""``usvid demo``: run the whole pipeline on a small synthetic scan set."""

from __future__ import annotations

import typer
from rich.table import Table

from usvid.cli.common import console, handle_errors, next_step


@handle_errors
def demo(
    out: str = typer.Option("demo_out", "--out", metavar="DIR", help="Folder for everything the demo writes."),
) -> None:
    """Generate synthetic scans, extract them, train a small LA-Net, export it and write an overlay video."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from usvid.cli.train import TrainProgress
    from usvid.demo import run_demo

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stats]}"))
    with Progress(*columns, console=console) as progress:
        result = run_demo(out, on_step=lambda name: console.print(f"[bold cyan]>>[/] {name}"),
                          train_progress=TrainProgress(progress))
    table = Table(title=f"usvid demo: everything is under {out}")
    for column in ("step", "output", "result"):
        table.add_column(column)
    for name, (path, summary) in result.outputs.items():
        table.add_row(name, str(path), summary)
    console.print(table)
    next_step("usvid predict SCAN.mp4 --out PREDICTIONS on your own scans (the shipped model), or "
              "usvid synth -> extract -> train by hand: `usvid --help` lists them in order")
