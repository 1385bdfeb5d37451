"""``usvid repeat``: the paper's comparisons with R seeds each, mean and 95% t-interval over seeds."""

from __future__ import annotations

import typer
from rich.markup import escape
from usvid.cli.common import console, handle_errors, next_step


@handle_errors
def repeat(
    # Paths are plain text, not Path: click's path type turns a NUL byte into a multi-line usage box.
    store: str = typer.Argument(..., metavar="STORE", help="Frame store written by `usvid extract`."),
    study: str = typer.Option("models", "--study", help="models, ablations, box_fractions or pseudo_sources."),
    seeds: int = typer.Option(3, "--seeds", help="Runs per variant (seeds 0 .. N-1)."),
    out: str = typer.Option(..., "--out", metavar="DIR", help="Folder for the runs, study.json and study.md."),
    size: int = typer.Option(256, "--size", help="Network input size (a multiple of 32)."),
    stage1_epochs: int = typer.Option(10, "--stage1-epochs", help="Stage-1 (localisation) epochs."),
    epochs: int = typer.Option(100, "--epochs", help="Stage-2 epochs."),
    batch_size: int = typer.Option(8, "--batch-size", help="Frames per optimizer step."),
    depth: int = typer.Option(18, "--depth", help="ResNet depth of the FEX: 18 or 50."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    positive: str = typer.Option("malignant", "--positive",
                                 help="Class that sensitivity, specificity, PPV and NPV are about."),
) -> None:
    """Train each variant of a study with several seeds, evaluate on the test split, report mean and 95% CI.

    Finished runs (their eval/report.json exists) are reused, so an interrupted study resumes.
    """
    from usvid.outputs import check_path_text
    from usvid.training.repeat import run_study

    result = run_study(
        check_path_text(store, "STORE"), study, seeds, check_path_text(out, "--out"), size=size,
        stage1_epochs=stage1_epochs, epochs=epochs, batch_size=batch_size, depth=depth, device=device,
        positive=positive, on_run=lambda name, seed, row: console.print(f"{escape(name)} seed {seed} done"),
    )
    from usvid.training.repeat import markdown_table

    typer.echo(markdown_table(result), nl=False)
    next_step(f"read {out}/study.md (the table above) and {out}/study.json (every run's figures)")
