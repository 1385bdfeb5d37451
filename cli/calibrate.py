"""``usvid calibrate``: choose a checkpoint's mask threshold on a validation split and store it in the model."""

from __future__ import annotations

import typer
from usvid.cli.common import DEVICE_HELP, console, handle_errors, next_step


@handle_errors
def calibrate(
    checkpoint: str = typer.Argument(..., metavar="CHECKPOINT", help="A usvid checkpoint (best.pt)."),
    store: str = typer.Argument(..., metavar="STORE", help="The frame store it was trained on (`usvid extract`)."),
    split: str = typer.Option("val", "--split", help="The split to choose on: a validation split, never test."),
    out: str = typer.Option(None, "--out", metavar="FILE", show_default="CHECKPOINT itself",
                            help="Write the calibrated checkpoint here instead of replacing CHECKPOINT."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
) -> None:
    """Choose the mask threshold with the best mask JSI on a validation split and store it in the checkpoint.

    `usvid train` does this by itself at the end of a run; this command does it for older checkpoints.
    """
    from usvid.inference.base import resolve_device
    from usvid.outputs import check_output_file, check_path_text
    from usvid.training.calibrate import calibrate_checkpoint, describe_choice

    source = check_path_text(checkpoint, "checkpoint")
    out_path = check_output_file(out, inputs=(store,)) if out is not None else None
    choice = calibrate_checkpoint(source, check_path_text(store, "STORE"), split, out=out_path,
                                  device=resolve_device(device))
    target = out_path or source
    console.print(f"mask threshold: {describe_choice(choice)}", highlight=False)
    if choice.threshold is not None:
        console.print(f"wrote {target}", highlight=False)
        next_step(f"usvid export {target} --out model.onnx")
