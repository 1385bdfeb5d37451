"""``usvid eval``: held-out frame- and video-level metrics, localisation JSI, plots and Grad-CAM of a checkpoint."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from usvid.cli.common import THRESHOLD_DEFAULT, THRESHOLD_HELP, console, handle_errors, next_step


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


@handle_errors
def eval_command(
    # Paths are plain text, not Path: click's path type turns a NUL byte into a multi-line usage box.
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="best.pt / last.pt from `usvid train`, or a shipped model's name (`usvid models`)."),
    store: str = typer.Argument(..., metavar="STORE", help="Frame store written by `usvid extract`."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (train, val or test)."),
    out: str = typer.Option(..., "--out", metavar="DIR", help="Folder for report.json, report.md and the PNG plots."),
    frames_per_video: int = typer.Option(None, "--frames-per-video", show_default="all",
                                        help="Evenly spaced frames per video."),
    batch_size: int = typer.Option(32, "--batch-size", help="Frames per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    examples: int = typer.Option(8, "--examples", help="Frames shown in the overlay and Grad-CAM plots."),
    positive: str = typer.Option("malignant", "--positive",
                                 help="Class that sensitivity, specificity, PPV, NPV and AUC are about."),
    tta: str = typer.Option("none", "--tta", help="Test-time augmentation: none or flip (mean with the mirror)."),
    threshold: float | None = typer.Option(None, "--threshold", show_default=THRESHOLD_DEFAULT,
                                           help=THRESHOLD_HELP + " Scores JSI and draws the overlays."),
) -> None:
    """Evaluate a checkpoint on a split of a frame store and write a report with plots."""
    from usvid.training.eval import evaluate_checkpoint

    progress = Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console)
    task = None

    def on_batch(done: int, total: int) -> None:
        nonlocal task
        # Started at the first batch, so a refusal before any work (bad checkpoint, bad --out) stays one line.
        if task is None:
            progress.start()
            task = progress.add_task("eval", total=total)
        progress.update(task, completed=done, total=total)

    try:
        result = evaluate_checkpoint(
            checkpoint, store, split, out, frames_per_video=frames_per_video, batch_size=batch_size, device=device,
            num_examples=examples, progress=on_batch, positive=positive, tta=tta,
            mask_threshold=threshold,
        )
    finally:
        if task is not None:
            progress.stop()
    from usvid.training.report import headline_table, interval_note

    rep = result.report
    table = Table(title=f"usvid eval: {rep['split']} split, {rep['frames']} frames / {rep['videos']} videos, "
                        f"positive class {rep['positive_class']}, TTA {rep['tta']}")
    header, rows = headline_table(rep)
    # One column per level (figures down the side), so the intervals fit an 80-column terminal uncut.
    table.add_column("metric")
    for row in rows:
        table.add_column(f"{row[0]} ({row[1]})", overflow="fold")
    for k, name in enumerate(header[2:], start=2):
        table.add_row(name, *(row[k] for row in rows))
    console.print(table)
    console.print(interval_note(rep), highlight=False, soft_wrap=True)
    fl = rep["frame_level"]
    if rep["mask_threshold"] is None:
        console.print("no lesion mask: the model only classifies", highlight=False)
    else:
        console.print(f"JSI mask {_fmt(fl['jsi_mask'])}, JSI box {_fmt(fl['jsi_box'])} over {fl['jsi_frames']} "
                      f"annotated lesion frames (lesion pixels p >= {rep['mask_threshold']:g})", highlight=False)
    console.print(f"report: {result.files['report.md']}", highlight=False)
    next_step(f"usvid export {checkpoint} --out model.onnx")
