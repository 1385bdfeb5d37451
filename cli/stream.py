"""``usvid stream``: real-time class and lesion-box overlay on a live or recorded ultrasound feed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

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
    apply_options,
    build_config,
    console,
    handle_errors,
    model_or_default,
    parse_ints,
    read_config_file,
)

#: Where each option goes in StreamConfig (SOURCE too; --model is laid on as given, see stream()).
OPTIONS: dict[str, Option] = {
    "source": "source", "realtime": "realtime", "record": "record", "jsonl": "jsonl",
    "serve": "serve", "serve_public": "serve_public", "window": "window", "stats": "stats",
    "max_frames": "max_frames",
    "roi": ("region.roi", lambda text: parse_ints(text, 4, "--roi", "40,60,600,400")),
    "detect_roi": "region.detect", "threshold": "threshold", "smoothing": "smoothing",
    "smoothing_tau": "smoothing_tau_s", "backend": "backend", "device": "device", "keep_ui": "keep_ui",
    "record_status": "record_status",
}


@handle_errors
def stream(
    ctx: typer.Context,
    source: str = typer.Argument(
        None, metavar="SOURCE", show_default=False,
        help="/dev/videoN, rtsp://, udp://, http:// URL, video file, frame folder or DICOM (or 'source' in "
        "--config).",
    ),
    model: str = typer.Option(None, "--model", metavar="MODEL", show_default=MODEL_DEFAULT, help=MODEL_HELP),
    realtime: bool = typer.Option(
        False, "--realtime", help="Play recorded sources at their native frame rate."
    ),
    record: Path | None = typer.Option(None, "--record", show_default="none",
                                       help="Write the overlaid stream as H.264 mp4."),
    jsonl: Path | None = typer.Option(None, "--jsonl", show_default="none",
                                      help="Write per-frame records as JSON lines (events: <name>.events.jsonl beside it)."),
    serve: str | None = typer.Option(None, "--serve", metavar="HOST:PORT", show_default="none",
                                     help="Browser view at HOST:PORT, e.g. 127.0.0.1:8080."),
    serve_public: bool = typer.Option(
        False, "--serve-public", help="Allow --serve on an address other machines can reach (no login)."
    ),
    window: bool = typer.Option(False, "--window", help="Show an OpenCV window (needs a display)."),
    stats: Path | None = typer.Option(
        None, "--stats", show_default="none", help="Write frames, dropped, fps and latency to JSON."
    ),
    max_frames: int | None = typer.Option(None, "--max-frames", show_default="until the source ends",
                                          help="Stop after N frames from the source."),
    roi: str | None = typer.Option(
        None, "--roi", show_default="detect", help="Fixed scan region x,y,w,h in source pixels."
    ),
    detect_roi: bool = typer.Option(True, "--detect-roi/--full-frame",
                                    help="Detect the scan region as `usvid extract` does, or use whole frames."),
    threshold: float | None = typer.Option(None, "--threshold", show_default=THRESHOLD_DEFAULT,
                                           help=THRESHOLD_HELP),
    smoothing: bool = typer.Option(False, "--smoothing/--no-smoothing", help=SMOOTHING_HELP),
    smoothing_tau: float = typer.Option(0.15, "--smoothing-tau", metavar="SECONDS", help=SMOOTHING_TAU_HELP),
    backend: str = typer.Option("auto", "--backend", help="auto, torch, onnxruntime or tensorrt."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    keep_ui: bool = typer.Option(
        False, "--keep-ui", help="Show the whole frame, burned-in text too (default: only the scan region)."
    ),
    record_status: bool = typer.Option(
        False, "--record-status", help="Burn the fps / latency / dropped line into --record too."
    ),
    config: str = typer.Option(None, "--config", metavar="FILE", show_default="none",
                               help=CONFIG_HELP.format(fields="StreamConfig's fields, e.g. source, model, "
                                                              "region.roi")),
) -> None:
    """Overlay lesion box, class and probability on every frame of a feed, live."""
    from usvid.streaming import StreamConfig, run_stream

    data = apply_options(read_config_file(config), ctx, OPTIONS)
    config = build_config(StreamConfig, data, config)
    if model is not None or "model" not in data:
        # As typed (the file's reader would make a name a Path); without one, says which shipped model it is.
        config = dataclasses.replace(config, model=model_or_default(model))
    with Live(Text("opening source ..."), console=console, refresh_per_second=4, transient=True) as live:

        def on_started(pipeline) -> None:
            selection = getattr(pipeline.predictor, "selection", None)
            if selection is not None:
                console.print(selection.describe())
            if pipeline.url:
                console.print(f"browser view: [link={pipeline.url}]{pipeline.url}[/]")

        def on_status(status) -> None:
            s = status.stats
            lat = (
                "-"
                if s.recent_latency_p50_ms is None
                else f"{s.recent_latency_p50_ms:.1f}/{s.recent_latency_p95_ms:.1f} ms"
            )
            label = "-" if status.class_name is None else f"{status.class_name} {status.probability:.0%}"
            live.update(
                Text(
                    f"{status.state.value} | {s.frames} frames | {s.recent_fps:.1f} fps | "
                    f"latency p50/p95 {lat} | dropped {s.dropped} | {label}"
                )
            )

        summary = run_stream(config, on_status=on_status, on_started=on_started)
    console.print(_summary_table(summary))


def _summary_table(summary) -> Table:
    s = summary.stats
    table = Table(title=f"usvid stream: stopped by {summary.stopped_by}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("frames (overlaid / captured)", f"{s.frames} / {s.captured}")
    table.add_row("dropped (newest-frame policy)", str(s.dropped))
    table.add_row("fps (sustained)", f"{s.fps:.1f}")
    lat = s.latency_ms
    if lat.p50 is not None:
        table.add_row("latency p50 / p95 / p99", f"{lat.p50:.1f} / {lat.p95:.1f} / {lat.p99:.1f} ms")
        table.add_row("network forward p50", f"{s.forward_ms.p50:.1f} ms")
    if s.signal_lost_events:
        table.add_row("signal lost / reconnects", f"{s.signal_lost_events} / {s.reconnects}")
    for name, count in s.sink_dropped.items():
        if count:
            table.add_row(f"dropped by sink {name}", str(count))
    for name, path in summary.outputs.items():
        table.add_row(name, str(path))
    return table
