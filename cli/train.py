"""``usvid train``: two-stage semi-supervised LA-Net training on a frame store (paper Algorithm 1)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from usvid.cli.common import console, handle_errors


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


class TrainProgress:
    """Renders :class:`usvid.training.progress.TrainEvent` s: one bar per epoch, one summary line per epoch."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None

    def __call__(self, event) -> None:
        title = f"stage {event.stage} epoch {event.epoch}/{event.epochs}"
        if event.kind == "stage":
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(title, total=event.steps, stats="")
        elif event.kind == "step" and self.task is not None:
            l = event.losses
            stats = (f"loss {l['loss']:.3f} (cls {l['cls']:.3f} loc {l['loc']:.3f} pseudo {l['pseudo']:.3f}) "
                     f"acc {_fmt(event.accuracy)} {event.frames_per_s:.1f} frames/s ETA {_fmt(event.eta_s, '.0f')}s")
            self.progress.update(self.task, completed=event.step, description=title, stats=stats)
        elif event.kind == "epoch":
            v = event.val or {}
            self.progress.console.print(
                f"stage {event.stage} epoch {event.epoch}/{event.epochs}: loss {event.losses['loss']:.4f}  "
                f"val acc {_fmt(v.get('accuracy'))}  F1 {_fmt(v.get('f1_macro'))}  AUC {_fmt(v.get('auc'))}  "
                f"JSI mask {_fmt(v.get('jsi_mask'))} box {_fmt(v.get('jsi_box'))}",
                highlight=False,
            )


@handle_errors
def train(
    store: Path = typer.Argument(..., help="Frame store written by `usvid extract`."),
    model: str = typer.Option(None, "--model", help="Model name (see usvid.models.list_models()); default lanet_r18."),
    out: Path = typer.Option(..., "--out", help="Run folder: best.pt, last.pt, metrics.jsonl, config.json."),
    size: int = typer.Option(None, "--size", help="Network input size M (multiple of 32); default 256."),
    stage1_epochs: int = typer.Option(None, "--stage1-epochs", help="t_l: stage-1 (localisation) epochs; default 10."),
    epochs: int = typer.Option(None, "--epochs", help="t_c: stage-2 (joint) epochs; default 100."),
    batch_size: int = typer.Option(None, "--batch-size", help="Frames per step per process; default 8."),
    box_fraction: float = typer.Option(None, "--box-fraction", help="Keep annotations of this share of patients."),
    seed: int = typer.Option(None, "--seed", help="Seed of sampling, augmentation and initialisation; default 0."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt exactly."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or auto (default)."),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate; default 1e-3."),
    pseudo_source: str = typer.Option(None, "--pseudo-source", help="Pseudo-label source: self (default), stage1, ema."),
    frames_per_video: int = typer.Option(None, "--frames-per-video", help="Unannotated frames per video per epoch."),
    annotated_per_batch: int = typer.Option(None, "--annotated-per-batch", help="m: annotated frames per step."),
    num_workers: int = typer.Option(None, "--num-workers", help="Data-loading worker processes; default 2."),
    pretrained: str = typer.Option(None, "--pretrained", help="torchvision ResNet state-dict file for the FEX."),
    config: Path = typer.Option(None, "--config", help="JSON/YAML file of training options (flags override it)."),
) -> None:
    """Train a model: stage 1 localisation on annotated frames, stage 2 joint training with pseudo-labels."""
    from usvid.training.checkpointing import resolve_config
    from usvid.training.config import load_config
    from usvid.training.loop import fit

    given = {k: v for k, v in dict(
        model=model, size=size, stage1_epochs=stage1_epochs, epochs=epochs, batch_size=batch_size,
        box_fraction=box_fraction, seed=seed, device=device, lr=lr, pseudo_source=pseudo_source,
        frames_per_video=frames_per_video, annotated_per_batch=annotated_per_batch, num_workers=num_workers,
        pretrained=pretrained,
    ).items() if v is not None}
    base = load_config(config) if config is not None else None
    cfg = resolve_config(out, given, resume=resume, base=base)
    main = int(os.environ.get("RANK", "0")) == 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[stats]}"), console=console, disable=not main) as progress:
        result = fit(cfg, store, out, resume=resume, progress=TrainProgress(progress))
    if not main:
        return
    table = Table(title=f"usvid train: {cfg.model}", show_header=False)
    table.add_row("run", str(result.run))
    table.add_row("best.pt", f"{result.best} (epoch {result.best_epoch}, val accuracy "
                             f"{_fmt(result.best_val_accuracy)})" if result.best else "none (no stage-2 epoch ran)")
    table.add_row("last.pt", str(result.last))
    table.add_row("metrics", str(result.run / "metrics.jsonl"))
    console.print(table)
