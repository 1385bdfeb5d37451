"""``usvid predict``: per-frame class and lesion box over recorded scans, with overlay videos and a summary."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from usvid.cli.common import (
    CONFIG_HELP,
    DEVICE_HELP,
    MODEL_DEFAULT,
    MODEL_HELP,
    SMOOTHING_HELP,
    SMOOTHING_TAU_HELP,
    THRESHOLD_DEFAULT,
    THRESHOLD_HELP,
    Option,
    config_from_options,
    console,
    handle_errors,
    model_or_default,
    next_step,
    parse_ints,
)

#: Where each option goes in PredictConfig (SRC, --model, --out and --coco are not settings of it).
OPTIONS: dict[str, Option] = {
    "backend": "backend", "device": "device", "batch_size": "batch_size",
    "roi": ("region.roi", lambda text: parse_ints(text, 4, "--roi", "40,60,600,400")),
    "detect_roi": "region.detect", "smoothing": "smoothing", "smoothing_tau": "smoothing_tau_s",
    "smooth": "smoothing_alpha", "threshold": "threshold", "overlay": "overlay", "precision": "precision",
    "threads": "threads", "keep_ui": "keep_ui",
}


@handle_errors
def predict(
    ctx: typer.Context,
    # str, not Path: a path the OS cannot hold (a NUL byte) then gets usvid's one-line error, not a usage box.
    src: str = typer.Argument(..., metavar="SRC", help="A video, a folder of videos / frame folders, or a dataset manifest.csv."),
    model: str = typer.Option(None, "--model", metavar="MODEL", show_default=MODEL_DEFAULT, help=MODEL_HELP),
    out: str = typer.Option(
        ..., "--out", metavar="DIR", help="Folder for <video>.jsonl, <video>.overlay.mp4 and summary.csv."
    ),
    backend: str = typer.Option("auto", "--backend", help="auto, torch, onnxruntime or tensorrt."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch_size: int = typer.Option(8, "--batch-size", help="Frames per forward pass."),
    roi: str | None = typer.Option(None, "--roi", show_default="detect per video",
                                   help="Fixed scan region x,y,w,h in source pixels."),
    detect_roi: bool = typer.Option(True, "--detect-roi/--full-frame",
                                    help="Detect the scan region as `usvid extract` does, or use whole frames."),
    smoothing: bool = typer.Option(False, "--smoothing/--no-smoothing", help=SMOOTHING_HELP),
    smoothing_tau: float = typer.Option(0.15, "--smoothing-tau", metavar="SECONDS", help=SMOOTHING_TAU_HELP),
    # The older spelling: a per-frame EMA weight in (0, 1]; kept so scripts that use it still run.
    smooth: float | None = typer.Option(None, "--smooth", hidden=True),
    threshold: float | None = typer.Option(None, "--threshold", show_default=THRESHOLD_DEFAULT,
                                           help=THRESHOLD_HELP),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write <video>.overlay.mp4."),
    precision: str = typer.Option("auto", "--precision", help="Torch backend: auto, fp32, fp16 or bf16."),
    threads: int | None = typer.Option(None, "--threads", show_default="all cores", help="onnxruntime intra-op threads."),
    coco: str | None = typer.Option(None, "--coco", metavar="FILE", show_default="none",
                                    help="Also write COCO detection results of every video to FILE (JSON)."),
    keep_ui: bool = typer.Option(False, "--keep-ui", help="Overlays show the whole frame, burned-in text included "
                                 "(default: blanked outside the scan region)."),
    config: str = typer.Option(None, "--config", metavar="FILE", show_default="none",
                               help=CONFIG_HELP.format(fields="PredictConfig's fields, e.g. batch_size, "
                                                              "region.roi")),
) -> None:
    """Classify every frame and locate the lesion; exit code 1 if any video failed (the others still run).

    A re-run into the same --out skips videos already done with the same source, model and settings.
    """
    from usvid.inference.predict import PredictConfig, predict_videos

    config = config_from_options(PredictConfig, ctx, config, OPTIONS)
    model = model_or_default(model)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bars:
        videos = bars.add_task("videos", total=None)
        frames = bars.add_task("frames", total=None)
        current = {"index": -1}

        def on_progress(p) -> None:
            if p.video_index != current["index"]:
                current["index"] = p.video_index
                bars.update(videos, total=p.num_videos, completed=p.video_index)
                bars.reset(frames, total=p.frames_total, description=f"[cyan]{p.video}[/]")
            bars.update(frames, completed=p.frames_done, total=p.frames_total)

        report = predict_videos(src, model, out, config, progress=on_progress, coco=coco)
    if report.selection:
        console.print(report.selection)
    console.print(_table(report))
    failed = f", failed {len(report.failures)}" if report.failures else ""
    console.print(f"predicted {report.predicted}, already done {report.already_done}{failed}")
    for failure in report.failures:
        console.print(f"[bold red]failed:[/] {escape(str(failure.error))}", highlight=False, soft_wrap=True)
    console.print(f"summary: {report.summary_csv}")
    if coco is not None:
        console.print(f"COCO results: {coco}")
    next_step(f"usvid stream SOURCE --model {model} (the same model on a live feed)")
    if report.failures:
        raise typer.Exit(1)


def _table(report) -> Table:
    table = Table(title=f"usvid predict ({report.backend})")
    for col in ("video", "frames", "fps", "class", *(f"p({n})" for n in report.class_names), "lesion frames",
                "frames/s"):
        table.add_column(col, justify="left" if col in ("video", "class") else "right")
    for r in report.results:
        table.add_row(r.source.name, str(r.frames), f"{r.fps:.2f}", r.class_name,
                      *(f"{p:.3f}" for p in r.mean_probs), f"{r.lesion_frames}", f"{r.frames_per_second:.1f}")
    return table
