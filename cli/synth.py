"""``usvid synth``: generate synthetic MBUD-style breast-ultrasound scan videos."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from usvid.cli.common import (
    CONFIG_HELP,
    Option,
    config_from_options,
    console,
    handle_errors,
    next_step,
    parse_size,
)

#: Where each option goes in SynthConfig (OUT and --overwrite are not settings of it).
OPTIONS: dict[str, Option] = {
    "patients": "patients", "seconds": "seconds", "size": (("width", "height"), parse_size), "fps": "fps",
    "box_fraction": "box_fraction", "seed": "seed", "normal_fraction": "normal_fraction",
}


@handle_errors
def synth(
    ctx: typer.Context,
    # str, not Path: a path the OS cannot hold (a NUL byte) then gets usvid's one-line error, not a usage box.
    out: str = typer.Argument(
        ..., metavar="OUT", help="Folder to write the videos, manifest.csv, annotations.json and ground_truth.json to."
    ),
    patients: int = typer.Option(
        8, "--patients", help="Number of patients (each gets 1-3 videos and one label)."
    ),
    seconds: float = typer.Option(4.0, "--seconds", help="Length of every video in seconds."),
    size: str = typer.Option(
        "854x500", "--size", help="Frame size WIDTHxHEIGHT (even numbers; MBUD is 854x500)."
    ),
    fps: float = typer.Option(30.0, "--fps", help="Frames per second."),
    box_fraction: float = typer.Option(
        0.02, "--box-fraction", help="Share of frames with COCO lesion boxes (MBUD: ~2%)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same dataset."),
    normal_fraction: float = typer.Option(
        0.0, "--normal-fraction", help="Share of patients with lesion-free 'normal' videos."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Write into a folder synth did not make: files with the names synth writes are replaced; "
        "nothing else is touched or deleted.",
    ),
    config: str = typer.Option(None, "--config", metavar="FILE", show_default="none",
                               help=CONFIG_HELP.format(fields="SynthConfig's fields, e.g. patients, width, "
                                                              "height")),
) -> None:
    """Generate synthetic MBUD-style scan videos with a manifest, sparse COCO boxes and full ground truth.

    OUT must be new, empty or an earlier synth output; files synth did not write there are never touched.
    """
    from usvid.synth import SynthConfig, generate_dataset

    config = config_from_options(SynthConfig, ctx, config, OPTIONS)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeElapsedColumn(),
    )
    # Started on the first report, so an error found before any work is still a single line.
    bar = Progress(*columns, console=console, transient=True)
    task = None

    def progress(description: str, done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, description=description, completed=done, total=total)

    try:
        summary = generate_dataset(out, config, progress, overwrite=overwrite)
    finally:
        bar.stop()
    table = Table(
        title="usvid synth" + (" (reused: folder already held this dataset)" if summary.reused else "")
    )
    table.add_column("item")
    table.add_column("value", justify="right")
    labels = ", ".join(f"{name} {count}" for name, count in sorted(summary.labels.items()))
    for item, value in (
        ("patients", summary.patients),
        ("videos", f"{summary.videos} ({labels})"),
        ("frames", summary.frames),
        ("frames showing a lesion", summary.lesion_frames),
        ("annotated frames", f"{summary.annotated_frames} ({summary.annotated_boxes} with a box)"),
        ("size / fps", f"{config.width}x{config.height} @ {config.fps:g}"),
    ):
        table.add_row(item, str(value))
    console.print(table)
    console.print(f"videos      {summary.out / 'videos'}")
    console.print(f"manifest    {summary.manifest}")
    console.print(f"annotations {summary.annotations}")
    console.print(f"truth       {summary.ground_truth} (evaluation only)")
    next_step(f"usvid extract {summary.manifest} STORE")
