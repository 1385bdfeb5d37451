"""``usvid export``: a checkpoint to ONNX or a TensorRT engine, with parity against PyTorch checked."""

from __future__ import annotations

import typer
from rich.table import Table
from usvid.cli.common import (
    Option,
    apply_options,
    console,
    given_options,
    handle_errors,
    next_step,
    read_config_file,
)

#: Where the export flags go in ExportConfig (the --int8 part is laid on by hand: it exists only with --int8).
OPTIONS: dict[str, Option] = {
    "format": ("format", str.lower), "sample": "sample", "opset": "onnx.opset",
    "fp16": (("onnx.precision", "tensorrt.fp16"), lambda fp16: ("fp16" if fp16 else "fp32", fp16)),
    "max_batch": "tensorrt.max_batch", "workspace_mib": "tensorrt.workspace_mib",
}


def _config_data(ctx: typer.Context, config: str | None) -> dict:
    """The export settings as :class:`ExportConfig` nests them: the --config file's, then the flags given."""
    from usvid.errors import ConfigError

    data = apply_options(read_config_file(config), ctx, OPTIONS)
    given, p = given_options(ctx), ctx.params
    int8_flags = [f for f in ("calibration", "calibration_frames", "calibration_method") if f in given]
    if p["int8"] or isinstance(data.get("int8"), dict):
        int8 = data.setdefault("int8", {})
        int8 = int8 if isinstance(int8, dict) else {}  # not a mapping: config_from_mapping says so
        for flag, key in (("calibration", "calibration"), ("calibration_frames", "calibration_frames"),
                          ("calibration_method", "method")):
            if flag in given:
                int8[key] = p[flag].lower() if flag == "calibration_method" else p[flag]
        if "calibration" not in int8:
            raise ConfigError("--int8 needs --calibration STORE: a frame store (from `usvid extract`) of frames like "
                              "the ones the model will see, to measure activation ranges and check the result")
    elif int8_flags:
        raise ConfigError(f"--{int8_flags[0].replace('_', '-')} only applies with --int8")
    return data


@handle_errors
def export(
    ctx: typer.Context,
    # Paths are plain text, not Path: click's path type turns a NUL byte into a multi-line usage box.
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="usvid checkpoint (.pt) to export, or a shipped model's name."),
    format: str = typer.Option("onnx", "--format", help="onnx or tensorrt."),
    out: str = typer.Option(..., "--out", metavar="FILE", help="File to write (.onnx, or .engine for TensorRT)."),
    fp16: bool = typer.Option(False, "--fp16", help="Half precision inside the graph (fp32 inputs/outputs)."),
    max_batch: int = typer.Option(8, "--max-batch", help="TensorRT: largest batch of the optimisation profile."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (17 or newer)."),
    workspace_mib: int = typer.Option(2048, "--workspace-mib", help="TensorRT builder workspace limit."),
    sample: str = typer.Option(None, "--sample", metavar="PATH", show_default="none",
                               help="Image or video whose frames join the parity check."),
    int8: bool = typer.Option(False, "--int8", help="Static int8 ONNX for onnxruntime on the CPU (needs --calibration)."),
    calibration: str = typer.Option(
        None, "--calibration", metavar="STORE", show_default="none",
        help="--int8: frame store whose train split calibrates and val/test split checks."),
    calibration_frames: int = typer.Option(128, "--calibration-frames", help="--int8: frames to calibrate on."),
    calibration_method: str = typer.Option("minmax", "--calibration-method", help="--int8: minmax, percentile "
                                           "or entropy."),
    config: str = typer.Option(None, "--config", metavar="FILE", show_default="none",
                               help="JSON/YAML/TOML settings (keys as in ExportConfig: format, onnx, tensorrt, int8, "
                                    "sample); flags given go over it."),
) -> None:
    """Export a checkpoint; the file is kept only if it matches PyTorch.

    fp32: 1e-4 on probabilities and mask. fp16: 2e-2 and mask IoU >= 0.9. int8: the same class on >= 98% of the
    held-out frames where fp32 is not near a tie, and mask IoU >= 0.9.
    """
    from usvid.configfile import config_from_mapping
    from usvid.inference.export import ExportConfig, export_model

    config = config_from_mapping(ExportConfig, _config_data(ctx, config), where=config)
    with console.status(f"exporting {checkpoint} to {config.format} ..."):
        report = export_model(checkpoint, out, config)
    table = Table(title=f"usvid export: {report.format} ({report.precision})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("written", str(report.path))
    for extra in report.extra_files:
        table.add_row("also", str(extra))
    table.add_row("classes", ", ".join(report.info.class_names))
    table.add_row("input", f"(B, {report.info.preprocess.in_channels}, {report.info.preprocess.size}, "
                           f"{report.info.preprocess.size}) float32, preprocessed")
    table.add_row("model hash", report.info.model_hash)
    if report.parity is not None:
        table.add_row("parity vs PyTorch" if report.precision != "int8" else "int8 vs fp32 PyTorch",
                      report.parity.describe())
    table.add_row("time", f"{report.seconds:.1f} s")
    console.print(table)
    next_step(f"usvid predict VIDEOS --model {report.path} --out PREDICTIONS")
