"""``usvid extract``: recorded scans -> a frame store with per-patient splits."""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.markup import escape
from usvid.cli.common import (
    CONFIG_HELP,
    Option,
    config_from_options,
    console,
    handle_errors,
    next_step,
    parse_ints,
)


def _split(text: str):
    from usvid.data.splits import SplitFractions

    return SplitFractions.from_percent(parse_ints(text, 3, "--split", "70,15,15"))


def _groups(text: str) -> Path:
    from usvid.outputs import check_path_text

    return check_path_text(text, "--groups")


def _classes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(","))


#: Where each option goes in ExtractConfig (SRC... OUT stay on the command line: they are not settings of it).
OPTIONS: dict[str, Option] = {
    "size": "size", "every": "every", "fps": "fps", "split": ("split", _split), "seed": "seed",
    "roi": ("region.roi", lambda text: parse_ints(text, 4, "--roi", "40,60,560,400")), "dedupe": "dedupe",
    "strict": "strict", "groups": ("groups", _groups), "classes": ("classes", _classes),
    "category": "category", "backend": "backend", "workers": "workers",
}


@handle_errors
def extract(
    ctx: typer.Context,
    # Plain text, not Path: click's path type stats the value and turns a NUL byte into a multi-line usage box.
    paths: list[str] = typer.Argument(
        ...,
        metavar="SRC... OUT",
        help="Sources, then the frame store folder to write (resumes an interrupted extraction). A source is a "
        "manifest.csv (or its folder), a BUSI-style or BUS-BRA image folder, or one video. Several sources make "
        "one store: ids are prefixed with each source's folder name and each source is split on its own.",
    ),
    size: int = typer.Option(256, "--size", help="Stored frames are SIZE x SIZE (letterboxed, aspect kept)."),
    every: int = typer.Option(None, "--every", show_default="every frame", help="Keep every K-th frame (annotated frames always kept)."),
    fps: float = typer.Option(
        None, "--fps", show_default="every frame", help="Keep about F frames per second (annotated frames always kept)."
    ),
    split: str = typer.Option("70,15,15", "--split", help="Train,val,test percentages of patients."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
    roi: str = typer.Option(None, "--roi", show_default="detect per video", help="Fixed scan region x,y,w,h in source pixels (no detection)."),
    dedupe: bool = typer.Option(
        False, "--dedupe", help="Drop near-duplicate consecutive frames (a still probe)."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first failing video, or one whose decoding ends before its declared end."
    ),
    groups: str = typer.Option(
        None,
        "--groups",
        show_default="none",
        help="CSV of near-duplicate groups (group,image) kept in one split; with several sources it applies to "
        "the source whose video ids it names (BUSI's near_duplicates.csv: the BUSI folder).",
    ),
    classes: str = typer.Option(
        None, "--classes", show_default="all", help="Keep only these classes, such as benign,malignant (BUSI without normal)."
    ),
    category: str = typer.Option(
        "lesion",
        "--category",
        help="COCO category of annotations.json read as lesion boxes; boxes of other categories are skipped "
        "and counted.",
    ),
    backend: str = typer.Option("auto", "--backend", help="Decoder: auto, pyav, decord or torchcodec."),
    workers: int = typer.Option(
        0, "--workers", help="Videos extracted at once (0: one per CPU core, at most 8); the store is the same."
    ),
    config: str = typer.Option(None, "--config", metavar="FILE", show_default="none",
                               help=CONFIG_HELP.format(
                                   fields="ExtractConfig's fields, e.g. size, split.train, region.roi")),
) -> None:
    """Decode, crop the scan region, resize and store frames, boxes and masks, split by patient."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from usvid.data.extract import ExtractConfig, ExtractProgress, split_change_text
    from usvid.data.extract import extract as run_extract
    from usvid.errors import InputError

    if len(paths) < 2:
        raise InputError(
            f"usvid extract {' '.join(map(str, paths))}: needs SRC [SRC ...] OUT (a source, then the store folder)"
        )
    *srcs, out = (Path(p) for p in paths)
    config = config_from_options(ExtractConfig, ctx, config, OPTIONS)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        overall = bar.add_task("videos", total=None)
        running: dict[int, int] = {}  # video number -> its bar, while it is being extracted
        finished = 0
        lock = threading.Lock()  # events come from the worker threads

        def on_progress(event: ExtractProgress) -> None:
            with lock:
                show(event)

        def show(event: ExtractProgress) -> None:
            nonlocal finished
            if event.finished:
                finished += 1
                if event.video_number in running:
                    bar.remove_task(running.pop(event.video_number))
                bar.update(overall, total=event.num_videos, completed=finished)
                return
            if event.video_number not in running:
                running[event.video_number] = bar.add_task(escape(event.video_id), total=None)
            bar.update(
                running[event.video_number],
                total=event.frames_total or None,
                completed=event.frames_done,
            )
            bar.update(overall, total=event.num_videos)

        summary = run_extract(srcs, out, config, progress=on_progress)

    table = Table(title=f"frame store {summary.out}")
    for col in ("split", "class", "videos", "frames", "annotated"):
        table.add_column(col, justify="right" if col in ("videos", "frames", "annotated") else "left")
    for c in summary.counts:
        table.add_row(c.split, c.label, str(c.videos), str(c.frames), str(c.annotated))
    table.add_row(
        "[bold]all",
        "",
        *(str(sum(getattr(c, k) for c in summary.counts)) for k in ("videos", "frames", "annotated")),
    )
    console.print(table)
    changed = f" ({summary.changed} of them changed since the last run)" if summary.changed else ""
    removed = f", removed as no longer listed {summary.removed}" if summary.removed else ""
    early = f", ended early {summary.ended_early}" if summary.ended_early else ""
    console.print(
        f"extracted {summary.extracted}{changed}, already done {summary.skipped}{removed}, "
        f"dropped as near-duplicates {summary.deduped}{early}, failed {len(summary.failures)}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.split_changes:
        console.print(f"[yellow]note:[/] {escape(split_change_text(summary.split_changes))}", highlight=False, soft_wrap=True)
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/] {escape(str(warning))}", highlight=False, soft_wrap=True)
    for line in summary.split_warnings:
        console.print(f"[yellow]split warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    for failure in summary.failures:
        console.print(f"[red]failed:[/] {escape(str(failure))}", highlight=False, soft_wrap=True)
    next_step(f"usvid train {summary.out} --out RUN")
    if summary.failures:
        raise typer.Exit(1)
