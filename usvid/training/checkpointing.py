"""Run folder bookkeeping: ``last.pt`` / ``best.pt``, ``metrics.jsonl``, ``config.json`` and exact resume.

``last.pt`` is written atomically at the end of every epoch (both stages) with the optimizer, grad-scaler,
weight-EMA and RNG states (the lr schedule is a closed-form function of the position, so it has no state), the position (stage, epochs done) and the resolved config, so a run killed
mid-epoch resumes from the end of its last finished epoch and continues exactly as if never stopped.
Sampling plans depend only on ``(seed, stage, epoch)``; the torch RNG state (augmentation) is restored.
``best.pt`` is an inference checkpoint (no optimizer) of the epoch with the highest validation accuracy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from usvid.checkpoint import Checkpoint, checkpoint_from_model, load_checkpoint, save_checkpoint
from usvid.errors import InputError
from usvid.models.config import ModelConfig
from usvid.io import atomic_path
from usvid.preprocess import PreprocessConfig
from usvid.training.config import TrainConfig, check_resume_compatible

log = logging.getLogger(__name__)

LAST, BEST, METRICS, CONFIG = "last.pt", "best.pt", "metrics.jsonl", "config.json"
#: The mask threshold chosen for best.pt on the validation split, and the scores behind it.
THRESHOLD = "threshold.json"


@dataclass
class Position:
    """Where training stands: ``epochs_done`` finished epochs of ``stage`` (1 or 2), and the best so far."""

    stage: int = 1
    epochs_done: int = 0
    global_step: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = 0
    # Parts restored on resume (state dicts; empty when starting fresh).
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)
    teacher: dict[str, torch.Tensor] = field(default_factory=dict)
    #: :meth:`usvid.training.optim.WeightEma.state_dict` (empty when the run keeps no weight EMA).
    weight_ema: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    rng_per_rank: list[dict[str, Any]] = field(default_factory=list)


def capture_rng() -> dict[str, Any]:
    """Torch RNG states as tensors (``weights_only`` loading accepts nothing else)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train_state(position: Position, config: TrainConfig, **parts: Any) -> dict[str, Any]:
    return {
        "stage": position.stage,
        "epoch": position.epochs_done,
        "global_step": position.global_step,
        "best_val_acc": position.best_val_acc,
        "best_epoch": position.best_epoch,
        "config": config.to_dict(),
        "rng": capture_rng(),
        **parts,
    }


def save_last(run: Path, model: nn.Module, class_names: list[str], preprocess: PreprocessConfig, state: dict) -> None:
    save_checkpoint(run / LAST, checkpoint_from_model(model, class_names, preprocess, state))


def save_best(run: Path, model: nn.Module, class_names: list[str], preprocess: PreprocessConfig, info: dict) -> None:
    save_checkpoint(run / BEST, checkpoint_from_model(model, class_names, preprocess, info))


def check_run_folder(run: Path, resume: bool) -> Checkpoint | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to overwrite or to resume nothing."""
    last = run / LAST
    if resume:
        if not last.is_file():
            raise InputError(f"{run}: no {LAST} to resume from; drop --resume to start a new run there")
        return load_checkpoint(last)
    if last.exists() or (run / BEST).exists():
        raise InputError(f"{run}: already holds a training run; pass --resume to continue it or choose a new --out")
    return None


def resume_position(
    ckpt: Checkpoint, run: Path, config: TrainConfig, class_names: list[str], model: nn.Module
) -> Position:
    """Load weights into ``model`` and return the saved position, after checking the run is the same one."""
    state = ckpt.train_state
    if "config" not in state or "stage" not in state:
        raise InputError(f"{run / LAST}: holds no training state (an inference-only checkpoint?); cannot resume")
    check_resume_compatible(TrainConfig.from_dict(state["config"]), config, run)
    if list(ckpt.class_names) != list(class_names):
        raise InputError(
            f"{run / LAST}: trained on classes {ckpt.class_names} but the store has {class_names}; "
            "resume on the store it was trained on or start a new run"
        )
    inner = getattr(model, "module", model)
    # Compared as configs, not dicts: a run saved before a config key existed holds that key's default.
    if ModelConfig.from_dict(ckpt.model_config) != inner.config:
        raise InputError(f"{run / LAST}: saved for a different architecture ({ckpt.model_config}); use a new --out")
    inner.load_state_dict(ckpt.state_dict)
    return Position(
        stage=int(state["stage"]),
        epochs_done=int(state["epoch"]),
        global_step=int(state.get("global_step", 0)),
        best_val_acc=float(state.get("best_val_acc", -1.0)),
        best_epoch=int(state.get("best_epoch", 0)),
        optimizer=state.get("optimizer") or {},
        scheduler=state.get("scheduler") or {},
        scaler=state.get("scaler") or {},
        teacher=state.get("teacher") or {},
        weight_ema=state.get("weight_ema") or {},
        rng=state.get("rng") or {},
        rng_per_rank=state.get("rng_per_rank") or [],
    )


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    with open(run / METRICS, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def truncate_metrics(run: Path, stage: int, epochs_done: int) -> None:
    """Drop lines of epochs after the resumed position (written after the checkpoint, before a kill)."""
    path = run / METRICS
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if (rec["stage"], rec["epoch"]) <= (stage, epochs_done):
            kept.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in kept))


def run_config(run: Path) -> TrainConfig:
    """The training config a run folder was started with (from its ``config.json``)."""
    path = run / CONFIG
    if not path.is_file():
        raise InputError(f"{run}: no {CONFIG} here, so there is no run to resume; drop --resume to start one")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text())["train"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"{path}: unreadable run config ({err}); start a new run with a new --out") from None


def resolve_config(run: Path, overrides: dict[str, Any], *, resume: bool, base: TrainConfig | None = None) -> TrainConfig:
    """The config to train with: the resumed run's own (or ``base``, or the defaults) with ``overrides`` applied.

    Only options the user actually gave belong in ``overrides``, so resuming without repeating them works.
    """
    start = run_config(run) if resume else (base or TrainConfig())
    return start.merged(**overrides)


def write_resolved_config(run: Path, payload: dict[str, Any]) -> None:
    with atomic_path(run / CONFIG) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
