"""Two-stage training (the paper's Algorithm 1) as plain functions, readable top to bottom.

- Stage 1 (:func:`train_stage1_epoch`): FEX + mask branch on annotated frames only, ``L_loc``. The
  classifier is frozen. Skipped for models without a mask (vanilla ResNet).
- Stage 2 (:func:`train_stage2_epoch`): all networks, ``L_hyb`` (equation 6) on steps of ``m`` annotated and
  ``m'`` unannotated frames. The pseudo-label of an unannotated frame is ``binarize(P', tau)`` where P' is,
  by default (``pseudo_source="self"``), the mask the model itself predicts for that same augmented frame in
  the same forward pass, detached (as in the paper and the authors' code); ``"stage1"`` takes P' from a frozen
  copy of the model as it was after stage 1, ``"ema"`` from an exponential-moving-average teacher (both in eval
  mode, on the same augmented input). Vanilla models train on ``L_cls`` only.
- Validation every epoch (:func:`evaluate`) on the validation split; ``best.pt`` keeps the stage-2 epoch with
  the highest validation accuracy (the paper's rule; the test split is never looked at). With
  ``weight_ema_decay`` the weight EMA is what is validated and saved as ``best.pt``.
- The lr of every step comes from :class:`~usvid.training.optim.LrSchedule` (warm-up, then constant or
  cosine), in closed form: resuming with more epochs stretches the schedule over the new total.

:func:`fit` wires these together with checkpoints, resume, DDP and progress reporting.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from usvid import __version__
from usvid.boxes import MASK_THRESHOLD
from usvid.cpu import cpu_info
from usvid.errors import ConfigError, InputError, UsvidError
from usvid.io import write_json_atomic
from usvid.outputs import check_output_dir, check_path_text
from usvid.preprocess import PreprocessConfig
from usvid.training import checkpointing as ckpt
from usvid.training import ddp, sampling
from usvid.training.augment import TrainAugment
from usvid.training.calibrate import ThresholdChoice, calibrate_checkpoint
from usvid.training.compute import ComputeSettings, compute_settings
from usvid.training.config import TrainConfig
from usvid.training.frames import (
    BatchReader,
    FrameBatch,
    SplitFrames,
    keep_box_fraction,
    open_store,
    require_frames,
    split_frames,
    step_loader,
    store_name,
)
from usvid.training.losses import LossTerms, binarize, hybrid_loss, loc_loss, mask_target
from usvid.training.metrics import classification_metrics
from usvid.models import input_normalization
from usvid.training.optim import LrSchedule, WeightEma, make_optimizer
from usvid.training.predictions import predict_frames
from usvid.training.progress import ProgressFn, TrainEvent

log = logging.getLogger(__name__)


class TrainingDiverged(UsvidError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class StepEnv:
    """What every training step needs besides the model and optimizer."""

    config: TrainConfig
    ctx: ddp.DistContext
    augment: TrainAugment
    run: Path
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    #: Loader worker processes (``compute_settings`` resolves the config's None by device).
    num_workers: int = 0
    progress: ProgressFn | None = None
    global_step: int = 0

    @property
    def device(self) -> torch.device:
        return self.ctx.device


@dataclass
class EpochStats:
    """Running means of one epoch's losses and training accuracy, and its throughput."""

    sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "cls": 0.0, "loc": 0.0, "pseudo": 0.0})
    steps: int = 0
    seen: int = 0
    correct: int = 0
    #: Frames whose class prediction was scored (stage 2 only; stage 1 trains no classifier).
    scored: int = 0
    seconds: float = 0.0

    def means(self) -> dict[str, float]:
        return {k: v / max(self.steps, 1) for k, v in self.sums.items()}

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None


@dataclass
class FitResult:
    """Where a run's outputs are and how it went."""

    run: Path
    last: Path
    best: Path | None
    best_val_accuracy: float | None
    best_epoch: int
    history: list[dict[str, Any]]
    #: The trained network (last epoch's weights, unwrapped, on the training device).
    model: nn.Module | None = None
    #: The mask threshold chosen on the validation split and stored in ``best.pt`` (None: not calibrated).
    threshold: ThresholdChoice | None = None


# ---------------------------------------------------------------------------------------------- one step


def _to_input(batch: FrameBatch, env: StepEnv) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented input ``(B, 1, M, M)``, full-size mask ``(B, 1, M, M)``, annotated ``(B,)``, labels ``(B,)``."""
    dev = env.device
    images = batch.images.to(dev, non_blocking=True)
    masks = batch.masks.to(dev, non_blocking=True)
    x, mask = env.augment(images, masks)
    if env.config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, mask, batch.annotated.to(dev, non_blocking=True), batch.labels.to(dev, non_blocking=True)


def _forward(model: nn.Module, x: torch.Tensor, env: StepEnv):
    with torch.autocast(device_type=env.device.type, dtype=env.amp_dtype, enabled=env.amp_dtype is not None):
        return model(x)


def _check_finite(terms: LossTerms, env: StepEnv, stage: int, epoch: int, step: int) -> list[float]:
    """Loss values averaged over processes; stops the run on NaN/inf before the weights are touched."""
    values = ddp.mean_across(torch.stack([t.detach().float() for t in terms]), env.ctx).tolist()
    if not all(math.isfinite(v) for v in values):
        names = ("loss", "cls", "loc", "pseudo")
        detail = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, values, strict=True))
        kept = env.run / ckpt.LAST
        raise TrainingDiverged(
            f"non-finite loss at stage {stage}, epoch {epoch + 1}, step {step + 1} ({detail}); stopped. "
            f"{'The last good checkpoint is ' + str(kept) if kept.exists() else 'No epoch had finished yet'}. "
            "Lower --lr (or disable AMP) and resume or restart"
        )
    return values


def _optimize(loss: torch.Tensor, optimizer: torch.optim.Optimizer, env: StepEnv) -> None:
    optimizer.zero_grad(set_to_none=True)
    if env.scaler is not None:
        env.scaler.scale(loss).backward()
        env.scaler.step(optimizer)
        env.scaler.update()
    else:
        loss.backward()
        optimizer.step()


def _loss_mask(out) -> tuple[torch.Tensor | None, bool]:
    """The mask the loss supervises and whether it is pre-sigmoid: ``mask_logits`` at the model's own
    resolution when the model gives them (fp32 BCE-with-logits stays exact under bf16 autocast), else
    the probabilities ``mask`` (models without logits)."""
    logits = getattr(out, "mask_logits", None)
    return (logits, True) if logits is not None else (out.mask, False)


def _probability(pred: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """P' in [0, 1], float32, no gradient, at ``pred``'s own resolution."""
    pred = pred.detach().float()
    return pred.sigmoid() if from_logits else pred


def _pseudo_target(
    pred: torch.Tensor, from_logits: bool, x: torch.Tensor, annotated: torch.Tensor, teacher: nn.Module | None,
    env: StepEnv,
) -> torch.Tensor | None:
    """``binarize(P', tau)`` for the unannotated rows (annotated rows are ignored by the loss), on the grid of
    the mask it supervises."""
    unannotated = ~annotated
    if not bool(unannotated.any()):
        return None
    if teacher is None:
        return binarize(_probability(pred, from_logits), env.config.tau)
    target = torch.zeros(pred.shape, dtype=torch.float32, device=pred.device)
    with torch.no_grad():
        t_pred, t_logits = _loss_mask(_forward(teacher, x[unannotated], env))
        target[unannotated] = binarize(_probability(t_pred, t_logits), env.config.tau)
    return target


def _report_step(env: StepEnv, stats: EpochStats, stage: int, epoch: int, epochs: int, step: int, steps: int) -> None:
    if env.progress is None or not env.ctx.is_main:
        return
    if (step + 1) % env.config.log_every and step + 1 != steps:
        return
    per_step = stats.seconds / max(stats.steps, 1)
    remaining = (steps - step - 1) + (epochs - epoch - 1) * steps
    env.progress(
        TrainEvent(
            kind="step", stage=stage, epoch=epoch + 1, epochs=epochs, step=step + 1, steps=steps,
            losses=stats.means(), accuracy=stats.accuracy,
            frames_per_s=stats.seen * env.ctx.world_size / max(stats.seconds, 1e-9), eta_s=remaining * per_step,
        )
    )


# ---------------------------------------------------------------------------------------------- epochs


def train_stage1_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader, env: StepEnv, *, epoch: int, epochs: int,
    schedule: LrSchedule | None = None, weight_ema: WeightEma | None = None,
) -> EpochStats:
    """One stage-1 epoch: ``L_loc`` on annotated frames (equation 5). The classifier must be frozen.
    ``schedule`` sets each step's lr; ``weight_ema`` follows the (unwrapped) model after each step."""
    model.train()
    stats = EpochStats()
    steps = len(loader)
    start = time.perf_counter()
    for step, batch in enumerate(loader):
        if schedule is not None:
            schedule.apply(optimizer, epoch, step, steps)
        x, mask, _, _ = _to_input(batch, env)
        out = _forward(model, x, env)
        pred, from_logits = _loss_mask(out)
        loss = loc_loss(pred, mask_target(mask, tuple(pred.shape[-2:])), from_logits=from_logits)
        zero = loss.new_zeros(())
        values = _check_finite(LossTerms(loss, zero, loss, zero), env, 1, epoch, step)
        _optimize(loss, optimizer, env)
        if weight_ema is not None:
            weight_ema.update(ddp.unwrap(model))
        _accumulate(stats, values, len(x), start)
        env.global_step += 1
        _report_step(env, stats, 1, epoch, epochs, step, steps)
    return stats


def train_stage2_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader,
    env: StepEnv,
    *,
    epoch: int,
    epochs: int,
    teacher: nn.Module | None = None,
    ema_target: nn.Module | None = None,
    schedule: LrSchedule | None = None,
    weight_ema: WeightEma | None = None,
) -> EpochStats:
    """One stage-2 epoch: ``L_hyb`` (equation 6). ``teacher`` supplies P' for "stage1"/"ema" pseudo-labels;
    ``ema_target`` (the unwrapped student) is what an EMA teacher follows after each step. ``schedule`` sets
    each step's lr; ``weight_ema`` follows the (unwrapped) model after each step."""
    cfg = env.config
    model.train()
    stats = EpochStats()
    steps = len(loader)
    start = time.perf_counter()
    for step, batch in enumerate(loader):
        if schedule is not None:
            schedule.apply(optimizer, epoch, step, steps)
        x, mask, annotated, labels = _to_input(batch, env)
        out = _forward(model, x, env)
        pred, from_logits = _loss_mask(out)
        target = pseudo = None
        if pred is not None:
            target = mask_target(mask, tuple(pred.shape[-2:]))
            pseudo = _pseudo_target(pred, from_logits, x, annotated, teacher, env)
        terms = hybrid_loss(out.logits, labels, pred, target, annotated, pseudo, lam=cfg.lam, alpha=cfg.alpha,
                            from_logits=from_logits, label_smoothing=cfg.label_smoothing)
        values = _check_finite(terms, env, 2, epoch, step)
        _optimize(terms.total, optimizer, env)
        if ema_target is not None and teacher is not None:
            _ema_update(teacher, ema_target, cfg.ema_decay)
        if weight_ema is not None:
            weight_ema.update(ddp.unwrap(model))
        stats.correct += int((out.logits.detach().argmax(1) == labels).sum())
        stats.scored += len(labels)
        _accumulate(stats, values, len(x), start)
        env.global_step += 1
        _report_step(env, stats, 2, epoch, epochs, step, steps)
    return stats


def _accumulate(stats: EpochStats, values: Sequence[float], batch: int, start: float) -> None:
    for key, v in zip(("loss", "cls", "loc", "pseudo"), values, strict=True):
        stats.sums[key] += v
    stats.steps += 1
    stats.seen += batch
    stats.seconds = time.perf_counter() - start


@torch.no_grad()
def _ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s.detach(), 1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


def evaluate(
    model: nn.Module, reader: BatchReader, indices: Sequence[int], preprocess: PreprocessConfig, device: torch.device
) -> dict[str, float | None]:
    """Validation metrics with the shared preprocessing: accuracy, macro F1 / AUC, mean mask and box JSI."""
    preds = predict_frames(ddp.unwrap(model), reader, indices, preprocess, device)
    cls = classification_metrics(preds.labels, preds.probs, reader.frames.class_names)
    return {
        "accuracy": cls["accuracy"],
        "f1_macro": cls["f1_macro"],
        "auc": cls["auc"],
        "jsi_mask": sum(preds.jsi_mask) / len(preds.jsi_mask) if preds.jsi_mask else None,
        "jsi_box": sum(preds.jsi_box) / len(preds.jsi_box) if preds.jsi_box else None,
        "frames": len(indices),
    }


# ---------------------------------------------------------------------------------------------- fit


def fit(config: TrainConfig, store: Any, out: str | Path, *, resume: bool = False,
        progress: ProgressFn | None = None) -> FitResult:
    """Train ``config.model`` on ``store`` into the run folder ``out`` (``best.pt``, ``last.pt``,
    ``metrics.jsonl``, ``config.json``). Under torchrun every process calls this; rank 0 writes files.

    Args:
        store: a frame-store path (or an opened FrameStore).
        resume: continue the run in ``out`` from its ``last.pt`` exactly.
        progress: called with :class:`TrainEvent` s on rank 0.
    """
    # Before any work: an existing file, the store itself or a read-only place as the run folder.
    inputs = (check_path_text(store, "frame store"),) if isinstance(store, (str, Path)) else ()
    run = check_output_dir(out, inputs=inputs, option="--out")
    ctx = ddp.init_distributed(config.device)
    try:
        return _fit(config, open_store(store), run, resume, progress, ctx)
    finally:
        ddp.shutdown(ctx)


def _fit(config: TrainConfig, store: Any, run: Path, resume: bool, progress: ProgressFn | None,
         ctx: ddp.DistContext) -> FitResult:
    class_names = [str(c) for c in store.labels]
    if len(class_names) < 2:
        raise InputError(f"{store_name(store)}: holds only the class(es) {class_names}; a classifier needs two or more")
    train = split_frames(store, config.train_split, class_names)
    require_frames(train, store, min_classes=2)
    val = split_frames(store, config.val_split, class_names)
    require_frames(val, store)
    train = keep_box_fraction(train, config.box_fraction, config.seed)
    saved = ckpt.check_run_folder(run, resume)

    torch.manual_seed(config.seed)
    model = _build_model(config, class_names)
    has_mask = model.mask_branch is not None
    stage1_epochs = config.stage1_epochs if has_mask else 0
    if stage1_epochs and not train.annotated_indices:
        raise InputError(
            f"{store_name(store)}: stage 1 trains on annotated frames, but the '{config.train_split}' split has none"
            f"{' left after --box-fraction ' + str(config.box_fraction) if config.box_fraction < 1 else ''}; "
            "add boxes or masks, or pass --stage1-epochs 0"
        )
    position = ckpt.resume_position(saved, run, config, class_names, model) if saved else ckpt.Position()
    # The FEX's expected input scaling (EfficientNet-Lite: 0.5, 0.5); stored in the checkpoint's preprocessing.
    mean, std = input_normalization(model.config)
    # store_size: the frame path S -> M this network is trained on, repeated by every predictor.
    preprocess = PreprocessConfig(size=config.size, mean=mean, std=std, in_channels=model.config.in_channels,
                                  store_size=int(store.size))
    compute = compute_settings(config, ctx.device)
    if ctx.is_main:
        run.mkdir(parents=True, exist_ok=True)
        ckpt.write_resolved_config(run, _resolved(config, model, class_names, preprocess, store, train, val, ctx,
                                                  compute))
        if saved:
            ckpt.truncate_metrics(run, position.stage, position.epochs_done)

    env = _make_env(config, ctx, preprocess, run, progress, compute)
    model.to(ctx.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    weight_ema = WeightEma(model, config.weight_ema_decay) if config.weight_ema_decay is not None else None
    if weight_ema is not None and position.weight_ema:
        weight_ema.load_state_dict(position.weight_ema)
    # Per-rank augmentation streams; a resumed run continues the saved stream instead.
    torch.manual_seed(config.seed * 1000 + ctx.rank)
    if len(position.rng_per_rank) == ctx.world_size:
        ckpt.restore_rng(position.rng_per_rank[ctx.rank])
    elif position.rng:
        ckpt.restore_rng(position.rng)
    env.global_step = position.global_step
    readers = (BatchReader(store, train), BatchReader(store, val))
    val_indices = sampling.plan_eval(val, config.val_frames_per_video)
    history: list[dict[str, Any]] = []

    if position.stage == 1:
        _run_stage1(model, config, env, readers, val_indices, position, stage1_epochs, class_names, history,
                    weight_ema)
        position = ckpt.Position(stage=2, global_step=env.global_step, teacher=_teacher_state(config, model, has_mask))
    _run_stage2(model, config, env, readers, val_indices, position, class_names, history, weight_ema)
    ddp.barrier(ctx)
    best = run / ckpt.BEST
    choice = None
    if ctx.is_main and has_mask and config.calibrate_threshold and best.exists():
        choice = _calibrate(best, store, config.val_split, ctx.device, run)
    ddp.barrier(ctx)
    return FitResult(run=run, last=run / ckpt.LAST, best=best if best.exists() else None,
                     best_val_accuracy=position.best_val_acc if position.best_val_acc >= 0 else None,
                     best_epoch=position.best_epoch, history=history,
                     model=weight_ema.model if weight_ema is not None else model, threshold=choice)


def _calibrate(best: Path, store: Any, split: str, device: torch.device, run: Path) -> ThresholdChoice:
    """Store the val-chosen mask threshold in ``best.pt``; the scores behind it go to ``threshold.json``."""
    choice = calibrate_checkpoint(best, store, split, device=device)
    write_json_atomic(run / ckpt.THRESHOLD, choice.to_dict())
    if choice.threshold is None:
        log.warning("%s: mask threshold left at %g: %s", best, MASK_THRESHOLD, choice.reason)
    return choice


def _build_model(config: TrainConfig, class_names: list[str]) -> nn.Module:
    from usvid.models import create_model

    if config.init is not None:
        return _init_model(config, class_names)
    num_classes = len(class_names)
    names = ("use_cam", "use_sam", "use_mam", "fusion_pool", "mask_prior", "mask_stride")
    overrides = {k: getattr(config, k) for k in names if getattr(config, k) is not None}
    return create_model(config.model, num_classes=num_classes, in_channels=1, pretrained=config.pretrained, **overrides)


def _init_model(config: TrainConfig, class_names: list[str]) -> nn.Module:
    """The network of checkpoint ``config.init`` with its weights, in training mode (fine-tuning)."""
    from usvid.checkpoint import load_checkpoint

    start = load_checkpoint(config.init)
    trained_as = start.trained_model_name
    if trained_as is not None and config.model != trained_as:
        raise ConfigError(f"--init {config.init}: holds a {trained_as} network, but the model is {config.model}; "
                          f"drop --model (or give --model {trained_as})")
    if [c.lower() for c in start.class_names] != [c.lower() for c in class_names]:
        raise ConfigError(f"--init {config.init}: was trained on classes {start.class_names}, the store has "
                          f"{class_names}; extract the store with --classes {','.join(start.class_names)}")
    if start.preprocess.size != config.size:
        raise ConfigError(f"--init {config.init}: was trained at {start.preprocess.size} px; give --size "
                          f"{start.preprocess.size} (not {config.size})")
    return start.build_model().train()


def _make_env(config: TrainConfig, ctx: ddp.DistContext, preprocess: PreprocessConfig, run: Path,
              progress: ProgressFn | None, compute: ComputeSettings) -> StepEnv:
    scaler = torch.amp.GradScaler("cuda") if compute.grad_scaler else None
    augment = TrainAugment(config, preprocess).to(ctx.device)
    return StepEnv(config=config, ctx=ctx, augment=augment, run=run, amp_dtype=compute.amp_dtype, scaler=scaler,
                   num_workers=compute.num_workers, progress=progress if ctx.is_main else None)


def _teacher_state(config: TrainConfig, model: nn.Module, has_mask: bool) -> dict[str, torch.Tensor]:
    """Stage-1 weights seed the "stage1" and "ema" teachers."""
    if not has_mask or config.pseudo_source == "self":
        return {}
    if config.pseudo_source == "stage1" and config.stage1_epochs == 0:
        log.warning("pseudo_source 'stage1' with no stage-1 epochs: the teacher is the untrained initial model")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _make_teacher(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module | None:
    if not state:
        return None
    teacher = copy.deepcopy(model)
    teacher.load_state_dict(state)
    teacher.eval().requires_grad_(False)
    return teacher


Readers = tuple[BatchReader, BatchReader]


def _run_stage1(model: nn.Module, config: TrainConfig, env: StepEnv, readers: Readers, val_indices: list[int],
                position: ckpt.Position, epochs: int, class_names: list[str], history: list[dict],
                weight_ema: WeightEma | None = None) -> None:
    ctx = env.ctx
    if position.epochs_done >= epochs:
        return
    model.classifier.requires_grad_(False)
    optimizer = make_optimizer(model, config)
    # Stage 1 keeps a constant lr after any warm-up (the paper's Adam); the schedule is stage 2's.
    schedule = LrSchedule.for_stage(optimizer, config, epochs, cosine=False)
    if position.optimizer:
        optimizer.load_state_dict(position.optimizer)
    wrapped = ddp.wrap(model, ctx)
    train_reader, val_reader = readers
    for epoch in range(position.epochs_done, epochs):
        steps = sampling.plan_stage1(train_reader.frames, config.batch_size, seed=config.seed, epoch=epoch,
                                     rank=ctx.rank, world_size=ctx.world_size)
        _announce(env, 1, epoch, epochs, len(steps))
        loader = step_loader(train_reader, steps, env.num_workers, ctx.device.type == "cuda")
        stats = train_stage1_epoch(wrapped, optimizer, loader, env, epoch=epoch, epochs=epochs, schedule=schedule,
                                   weight_ema=weight_ema)
        ddp.sync_buffers(model, ctx)
        position.epochs_done, position.global_step = epoch + 1, env.global_step
        scored = weight_ema.model if weight_ema is not None else model
        val = evaluate(scored, val_reader, val_indices, env.augment.preprocess_config, ctx.device) if ctx.is_main else {}
        # The classifier is frozen at its initial weights in stage 1: only localisation is worth reporting.
        val = {k: (None if k in ("accuracy", "f1_macro", "auc") else v) for k, v in val.items()}
        record = _record(1, epoch, stats, val, config.lr * schedule.last_factor, ctx)
        _finish_epoch(model, env, position, record, class_names, history, epochs, optimizer=optimizer.state_dict(),
                      weight_ema=weight_ema.state_dict() if weight_ema is not None else {})
    model.classifier.requires_grad_(True)


def _run_stage2(model: nn.Module, config: TrainConfig, env: StepEnv, readers: Readers, val_indices: list[int],
                position: ckpt.Position, class_names: list[str], history: list[dict],
                weight_ema: WeightEma | None = None) -> None:
    ctx = env.ctx
    if position.epochs_done >= config.epochs:
        return
    teacher = _make_teacher(model, position.teacher)
    optimizer = make_optimizer(model, config)
    # Closed form over the current config.epochs: a saved scheduler state (older runs) is not restored, so a
    # run resumed with more epochs continues the cosine over the new total instead of restarting it.
    schedule = LrSchedule.for_stage(optimizer, config, config.epochs, cosine=config.scheduler == "cosine")
    if position.optimizer:
        optimizer.load_state_dict(position.optimizer)
    if env.scaler is not None and position.scaler:
        env.scaler.load_state_dict(position.scaler)
    wrapped = ddp.wrap(model, ctx)
    train_reader, val_reader = readers
    for epoch in range(position.epochs_done, config.epochs):
        steps = sampling.plan_stage2(
            train_reader.frames, config.batch_size, seed=config.seed, epoch=epoch,
            frames_per_video=config.frames_per_video, class_balance=config.class_balance,
            annotated_per_batch=config.annotated_per_batch, rank=ctx.rank, world_size=ctx.world_size,
        )
        _announce(env, 2, epoch, config.epochs, len(steps))
        loader = step_loader(train_reader, steps, env.num_workers, ctx.device.type == "cuda")
        stats = train_stage2_epoch(wrapped, optimizer, loader, env, epoch=epoch, epochs=config.epochs,
                                   teacher=teacher, ema_target=model if config.pseudo_source == "ema" else None,
                                   schedule=schedule, weight_ema=weight_ema)
        ddp.sync_buffers(model, ctx)
        position.epochs_done, position.global_step = epoch + 1, env.global_step
        scored = weight_ema.model if weight_ema is not None else model
        val = evaluate(scored, val_reader, val_indices, env.augment.preprocess_config, ctx.device) if ctx.is_main else {}
        record = _record(2, epoch, stats, val, config.lr * schedule.last_factor, ctx)
        if ctx.is_main and (val["accuracy"] or 0.0) > position.best_val_acc:
            position.best_val_acc, position.best_epoch = float(val["accuracy"] or 0.0), epoch + 1
            record["best"] = True
            ckpt.save_best(env.run, scored, class_names, env.augment.preprocess_config,
                           {"epoch": epoch + 1, "val": val, "config": config.to_dict()})
        position.best_val_acc = ddp.broadcast_object(position.best_val_acc, ctx)
        _finish_epoch(
            model, env, position, record, class_names, history, config.epochs,
            optimizer=optimizer.state_dict(),
            scaler=env.scaler.state_dict() if env.scaler is not None else {},
            weight_ema=weight_ema.state_dict() if weight_ema is not None else {},
            teacher={k: v.detach().cpu() for k, v in teacher.state_dict().items()} if teacher is not None else {},
        )


def _announce(env: StepEnv, stage: int, epoch: int, epochs: int, steps: int) -> None:
    log.info("stage %d epoch %d/%d: %d steps", stage, epoch + 1, epochs, steps)
    if env.progress is not None:
        env.progress(TrainEvent(kind="stage", stage=stage, epoch=epoch + 1, epochs=epochs, step=0, steps=steps,
                                losses={}))


def _record(stage: int, epoch: int, stats: EpochStats, val: dict, lr: float, ctx: ddp.DistContext) -> dict[str, Any]:
    """One ``metrics.jsonl`` line; ``lr`` is the (unscaled) lr of the epoch's last step."""
    return {
        "stage": stage,
        "epoch": epoch + 1,
        **stats.means(),
        "train_accuracy": stats.accuracy if stage == 2 else None,
        **{f"val_{k}": v for k, v in val.items()},
        "frames_per_s": stats.seen * ctx.world_size / max(stats.seconds, 1e-9),
        "lr": lr,
        "seconds": stats.seconds,
        "best": False,
    }


def _finish_epoch(model: nn.Module, env: StepEnv, position: ckpt.Position, record: dict, class_names: list[str],
                  history: list[dict], epochs: int, **parts: Any) -> None:
    """Metrics line first, then ``last.pt``: a kill in between only repeats the epoch (resume truncates)."""
    ctx = env.ctx
    parts.setdefault("teacher", {})
    state = ckpt.train_state(position, env.config, **parts)
    if ctx.distributed:
        state["rng_per_rank"] = ddp.gather_objects(ckpt.capture_rng(), ctx)
    if ctx.is_main:
        ckpt.append_metrics(env.run, record)
        ckpt.save_last(env.run, model, class_names, env.augment.preprocess_config, state)
        history.append(record)
        if env.progress is not None:
            env.progress(TrainEvent(kind="epoch", stage=record["stage"], epoch=record["epoch"], epochs=epochs,
                                    step=0, steps=0, losses={k: record[k] for k in ("loss", "cls", "loc", "pseudo")},
                                    accuracy=record["train_accuracy"], frames_per_s=record["frames_per_s"],
                                    val={k[4:]: v for k, v in record.items() if k.startswith("val_")}))
    ddp.barrier(ctx)


def _resolved(config: TrainConfig, model: nn.Module, class_names: list[str], preprocess: PreprocessConfig,
              store: Any, train: SplitFrames, val: SplitFrames, ctx: ddp.DistContext,
              compute: ComputeSettings) -> dict[str, Any]:
    """The resolved configuration written beside the run: everything that decided it."""
    return {
        "train": config.to_dict(),
        "model": model.config.to_dict(),
        "class_names": class_names,
        "preprocess": preprocess.to_dict(),
        "store": store_name(store),
        "world_size": ctx.world_size,
        "device": str(ctx.device),
        # Precision, memory format, threads and workers chosen for this device, and why.
        "compute": compute.to_dict(),
        "cpu": cpu_info().describe() if ctx.device.type == "cpu" else None,
        "usvid_version": __version__,
        "data": {
            "train_frames": len(train),
            "train_annotated_frames": len(train.annotated_indices),
            "train_videos": len(train.by_video()),
            "val_frames": len(val),
            "val_videos": len(val.by_video()),
        },
    }
