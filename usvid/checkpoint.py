"""Checkpoints that carry everything inference needs: model config, weights, class names, preprocessing.

Inference never rebuilds these from CLI flags. Files are written atomically and read with
``torch.load(weights_only=True)``, so only tensors and plain containers are stored.

Layout of the saved dict (``format = "usvid-checkpoint"``, ``version = 1``):
``model_config`` (dict of :class:`usvid.models.ModelConfig`), ``model`` (state dict), ``class_names``,
``preprocess`` (dict of :class:`usvid.preprocess.PreprocessConfig`), ``usvid_version`` and an optional
``train_state`` dict (optimizer, scheduler, scaler, epoch, stage, RNG state, resolved training config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usvid import __version__
from usvid.errors import InputError
from usvid.io import atomic_path
from usvid.preprocess import PreprocessConfig

FORMAT = "usvid-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``train_state`` is empty for inference-only checkpoints."""

    model_config: dict
    state_dict: dict[str, torch.Tensor]
    class_names: list[str]
    preprocess: PreprocessConfig
    usvid_version: str = __version__
    train_state: dict[str, Any] = field(default_factory=dict)

    def build_model(self) -> torch.nn.Module:
        """Rebuild the network from the stored config and load the weights (eval mode)."""
        from usvid.models import ModelConfig, build_model

        model = build_model(ModelConfig.from_dict(self.model_config))
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            raise InputError(f"checkpoint weights do not fit its own model config: {err}") from None
        return model.eval()


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically to ``path``."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "usvid_version": checkpoint.usvid_version,
        "model_config": checkpoint.model_config,
        "model": checkpoint.state_dict,
        "class_names": list(checkpoint.class_names),
        "preprocess": checkpoint.preprocess.to_dict(),
        "train_state": checkpoint.train_state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def checkpoint_from_model(
    model: torch.nn.Module, class_names: list[str], preprocess: PreprocessConfig, train_state: dict | None = None
) -> Checkpoint:
    """Package a model built by :func:`usvid.models.build_model` as a :class:`Checkpoint`."""
    # Unwrap DDP / torch.compile wrappers so the keys match a plain model.
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return Checkpoint(
        model_config=inner.config.to_dict(),
        state_dict={k: v.detach().cpu() for k, v in inner.state_dict().items()},
        class_names=list(class_names),
        preprocess=preprocess,
        train_state=train_state or {},
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt / foreign files
        raise InputError(f"{path}: not a readable usvid checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a usvid checkpoint (no 'format': '{FORMAT}' entry)")
    if payload.get("version") != VERSION:
        raise InputError(
            f"{path}: checkpoint format version {payload.get('version')} is not supported (expected {VERSION}); "
            "re-export it with this usvid version"
        )
    return Checkpoint(
        model_config=payload["model_config"],
        state_dict=payload["model"],
        class_names=list(payload["class_names"]),
        preprocess=PreprocessConfig.from_dict(payload["preprocess"]),
        usvid_version=payload.get("usvid_version", "?"),
        train_state=payload.get("train_state", {}),
    )
