"""``usvid export``: a checkpoint to ONNX or a TensorRT engine, with parity against PyTorch checked."""

from __future__ import annotations

import typer
from rich.table import Table
from usvid.cli.common import console, handle_errors, next_step


@handle_errors
def export(
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
) -> None:
    """Export a checkpoint; the file is kept only if it matches PyTorch.

    fp32: 1e-4 on probabilities and mask. fp16: 2e-2 and mask IoU >= 0.9. int8: the same class on >= 98% of the
    held-out frames where fp32 is not near a tie, and mask IoU >= 0.9.
    """
    from usvid.inference.export import ExportConfig, export_model
    from usvid.outputs import check_path_text

    sample_path = check_path_text(sample, "--sample") if sample is not None else None
    calibration_path = check_path_text(calibration, "--calibration") if calibration is not None else None
    config = ExportConfig(format=format.lower(), fp16=fp16, max_batch=max_batch, opset=opset,
                          workspace_mib=workspace_mib, sample=sample_path, int8=int8, calibration=calibration_path,
                          calibration_frames=calibration_frames, calibration_method=calibration_method.lower())
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
