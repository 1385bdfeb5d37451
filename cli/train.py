"""``usvid train``: two-stage semi-supervised LA-Net training on a frame store (paper Algorithm 1)."""

from __future__ import annotations

import os

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from usvid.cli.common import console, handle_errors, next_step
from usvid.errors import ConfigError


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


class TrainProgress:
    """Renders :class:`usvid.training.progress.TrainEvent` s: one bar per epoch, one summary line per epoch."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None
        self.started = False

    def __call__(self, event) -> None:
        if not self.started:
            # Started at the first event, so a refusal before training (bad --out, a finished run) stays one line.
            self.progress.start()
            self.started = True
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


def _parse_float(text: str, option: str = "--weight-ema") -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{option}: expected a number or none, got '{text}'") from None


def _parse_pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise ConfigError(f"--rrc-scale: expected LOW,HIGH such as 0.75,1 (or none), got '{text}'")
    low, high = (_parse_float(v, "--rrc-scale") for v in parts)
    return low, high


@handle_errors
def train(
    # Paths are plain text, not Path: click's path type turns a NUL byte into a multi-line usage box.
    store: str = typer.Argument(..., metavar="STORE", help="Frame store written by `usvid extract`."),
    # Options left at None take their value from --config, then --recipe, then the defaults shown here
    # (TrainConfig's: tests/packaging checks the two agree).
    model: str = typer.Option(None, "--model", metavar="NAME", show_default="lanet_r18",
                              help="Network to train: a registered variant (see `usvid models`)."),
    out: str = typer.Option(..., "--out", metavar="DIR", help="Run folder: best.pt, last.pt, metrics.jsonl, config.json."),
    size: int = typer.Option(None, "--size", show_default="256",
                             help="Network input size in pixels \\[M] (a multiple of 32 up to 2048)."),
    stage1_epochs: int = typer.Option(None, "--stage1-epochs", show_default="10",
                                      help="Stage-1 (localisation) epochs \\[t_l]."),
    epochs: int = typer.Option(None, "--epochs", show_default="100", help="Stage-2 (joint) epochs \\[t_c]."),
    batch_size: int = typer.Option(None, "--batch-size", show_default="8",
                                   help="Frames per step per process \\[m + m']."),
    box_fraction: float = typer.Option(None, "--box-fraction", show_default="1.0",
                                       help="Share of annotated patients whose boxes are kept (seeded)."),
    seed: int = typer.Option(None, "--seed", show_default="0",
                             help="Seed of sampling, augmentation and initialisation."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt exactly."),
    device: str = typer.Option(None, "--device", show_default="auto", help="auto, cpu or cuda."),
    lr: float = typer.Option(None, "--lr", show_default="0.001", help="Learning rate."),
    optimizer: str = typer.Option(None, "--optimizer", show_default="adam", help="adam (the paper's) or adamw."),
    weight_decay: float = typer.Option(None, "--weight-decay", show_default="0.0", help="Weight decay."),
    scheduler: str = typer.Option(None, "--scheduler", show_default="none", help="Stage-2 lr schedule: none or cosine."),
    warmup_epochs: float = typer.Option(None, "--warmup-epochs", show_default="0.0", help="Linear lr warm-up per stage."),
    schedule_unit: str = typer.Option(None, "--schedule-unit", show_default="epoch",
                                      help="The lr moves once per epoch or per step."),
    fex_lr_scale: float = typer.Option(None, "--fex-lr-scale", show_default="1.0",
                                       help="Learning-rate multiplier of the feature extractor (FEX)."),
    label_smoothing: float = typer.Option(None, "--label-smoothing", show_default="0.0",
                                          help="Label smoothing of the class loss."),
    weight_ema: str = typer.Option(None, "--weight-ema", "--ema", show_default="none",
                                   help="Decay of a weight EMA used for validation and best.pt (e.g. 0.999), or none."),
    rrc_scale: str = typer.Option(None, "--rrc-scale", show_default="none",
                                  help="Random resized crop area range LOW,HIGH (e.g. 0.75,1), or none."),
    pseudo_source: str = typer.Option(None, "--pseudo-source", show_default="self",
                                      help="Where stage-2 pseudo-labels come from: self, stage1 or ema."),
    frames_per_video: int = typer.Option(None, "--frames-per-video", show_default="64",
                                         help="Unannotated frames drawn per video per epoch."),
    annotated_per_batch: int = typer.Option(None, "--annotated-per-batch", show_default="the annotated share",
                                            help="Annotated frames per stage-2 step \\[m]."),
    num_workers: int = typer.Option(None, "--workers", show_default="0 on the CPU, 2 on CUDA",
                                    help="Data-loading worker processes."),
    num_workers_old: int = typer.Option(None, "--num-workers", hidden=True),  # the older spelling of --workers
    pretrained: str = typer.Option(None, "--pretrained", show_default="none",
                                   help="Feature-extractor (FEX) weights: imagenet (EfficientNet-Lite variants), "
                                        "a torchvision ResNet state-dict file, or none."),
    init: str = typer.Option(None, "--init", metavar="MODEL", show_default="none",
                             help="Start from this checkpoint's or shipped model's weights (fine-tuning), e.g. "
                                  "lanet-effl0-bus; its network unless --model names it too."),
    recipe: str = typer.Option(None, "--recipe", show_default="paper", help="Named option bundle: paper or finetune."),
    config: str = typer.Option(None, "--config", metavar="FILE", show_default="none",
                               help="JSON/YAML file of training options (over --recipe; flags override it)."),
) -> None:
    """Train a model: stage 1 localisation on annotated frames, stage 2 joint training with pseudo-labels."""
    from usvid.outputs import check_output_dir, check_path_text
    from usvid.training.calibrate import describe_choice
    from usvid.training.checkpointing import resolve_config
    from usvid.training.config import load_config, recipe_config
    from usvid.training.loop import fit

    num_workers = num_workers if num_workers is not None else num_workers_old
    store_path = check_path_text(store, "STORE")
    config_path = check_path_text(config, "--config") if config is not None else None
    # First, so a bad --out is named as such, not as "no config.json to resume" after reading the options.
    out_path = check_output_dir(out, inputs=(store_path, config_path), option="--out")
    given = {k: v for k, v in dict(
        model=model, size=size, stage1_epochs=stage1_epochs, epochs=epochs, batch_size=batch_size,
        box_fraction=box_fraction, seed=seed, device=device, lr=lr, pseudo_source=pseudo_source,
        frames_per_video=frames_per_video, annotated_per_batch=annotated_per_batch, num_workers=num_workers,
        optimizer=optimizer, weight_decay=weight_decay, scheduler=scheduler, warmup_epochs=warmup_epochs,
        schedule_unit=schedule_unit, fex_lr_scale=fex_lr_scale, label_smoothing=label_smoothing,
    ).items() if v is not None}
    if init is not None:
        from usvid.checkpoint import load_checkpoint

        given["init"] = init
        trained_as = load_checkpoint(init).trained_model_name
        if trained_as is not None:
            given.setdefault("model", trained_as)
        given["pretrained"] = None
    # Options whose "off" value is None are spelled "none" on the command line.
    for key, text, parse in (("pretrained", pretrained, str), ("weight_ema_decay", weight_ema, _parse_float),
                             ("rrc_scale", rrc_scale, _parse_pair)):
        if text is not None:
            given[key] = None if text.strip().lower() == "none" else parse(text)
    # Precedence: recipe < config file < flags (a resumed run starts from its own config instead).
    base = recipe_config(recipe) if recipe is not None else None
    base = load_config(config_path, base) if config_path is not None else base
    cfg = resolve_config(out_path, given, resume=resume, base=base)
    main = int(os.environ.get("RANK", "0")) == 0
    bars = TrainProgress(Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[stats]}"), console=console,
                                  disable=not main))
    try:
        result = fit(cfg, store_path, out_path, resume=resume, progress=bars)
    finally:
        if bars.started:
            bars.progress.stop()
    if not main:
        return
    table = Table(title=f"usvid train: {cfg.model}", show_header=False)
    table.add_row("run", str(result.run))
    table.add_row("best.pt", f"{result.best} (epoch {result.best_epoch}, val accuracy "
                             f"{_fmt(result.best_val_accuracy)})" if result.best else "none (no stage-2 epoch ran)")
    table.add_row("last.pt", str(result.last))
    table.add_row("metrics", str(result.run / "metrics.jsonl"))
    if result.threshold is not None:
        table.add_row("mask threshold", describe_choice(result.threshold))
    console.print(table)
    next_step(f"usvid eval {result.best or result.last} {store_path} --split test --out {result.run / 'eval'}")
