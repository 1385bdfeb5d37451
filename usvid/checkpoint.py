"""Checkpoints that carry everything inference needs: model config, weights, class names, preprocessing.

Inference never rebuilds these from CLI flags. Files are written atomically and read with
``torch.load(weights_only=True)``, so only tensors and plain containers are stored.

Layout of the saved dict (``format = "usvid-checkpoint"``, ``version = 1``):
``model_config`` (dict of :class:`usvid.models.ModelConfig`), ``model`` (state dict), ``class_names``,
``preprocess`` (dict of :class:`usvid.preprocess.PreprocessConfig`, with ``store_size``, the frame-store side the
network was trained from; checkpoints without it load with a warning and letterbox straight to ``size``), ``usvid_version``, an optional
``train_state`` dict (optimizer, scheduler, scaler, epoch, stage, RNG state, resolved training config) and
``integrity``: ``{"sha256": ...}`` over every other entry (:func:`payload_hash`).

Loading refuses, in one line naming the file: anything but a zip archive, what the weights-only unpickler
refuses, a damaged zip container, a missing entry, a hash that does not match (bytes flipped after saving:
PyTorch checks no checksum of tensor data, so such a file would otherwise load and predict garbage) and
weights holding NaN or inf. Checkpoints written before the hash existed still load, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usvid import __version__
from usvid.boxes import is_mask_threshold
from usvid.errors import InputError, UsvidError
from usvid.io import atomic_path
from usvid.outputs import check_path_text
from usvid.preprocess import PreprocessConfig, warn_if_store_size_unknown

log = logging.getLogger(__name__)

FORMAT = "usvid-checkpoint"
VERSION = 1
#: Entry holding the hash of all the others (absent from checkpoints written before it existed).
INTEGRITY = "integrity"
REQUIRED = ("model_config", "model", "class_names", "preprocess")
ENTRIES = frozenset({"format", "version", "usvid_version", "train_state", "mask_threshold", INTEGRITY, *REQUIRED})
#: Suffixes of model files that are not checkpoints, and what they are.
OTHER_MODEL_FILES = {".onnx": "an ONNX model", ".engine": "a TensorRT engine", ".plan": "a TensorRT engine"}


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``train_state`` is empty for inference-only checkpoints."""

    model_config: dict
    state_dict: dict[str, torch.Tensor]
    class_names: list[str]
    preprocess: PreprocessConfig
    usvid_version: str = __version__
    train_state: dict[str, Any] = field(default_factory=dict)
    #: The lesion-pixel threshold chosen for this model on its validation split
    #: (:mod:`usvid.training.calibrate`); ``None``: never calibrated, predictors use 0.5.
    mask_threshold: float | None = None

    @property
    def trained_model_name(self) -> str | None:
        """The registered model name it was trained as (``usvid train --model``), when recorded."""
        name = (self.train_state or {}).get("config", {}).get("model")
        return str(name) if name is not None else None

    def build_model(self) -> torch.nn.Module:
        """Rebuild the network from the stored config and load the weights (eval mode)."""
        from usvid.models import ModelConfig, build_model

        try:
            model = build_model(ModelConfig.from_dict(self.model_config))
        except (UsvidError, TypeError, ValueError) as err:
            raise InputError(f"checkpoint holds an unusable model config ({err})") from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            first = " ".join(str(err).split())
            raise InputError(f"checkpoint weights do not fit its own model config: {first[:300]}") from None
        return model.eval()


def payload_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of every entry but ``integrity``: keys, and each tensor's dtype, shape and bytes, in a fixed order.

    Plain values (config numbers, class names) are hashed by type and ``repr``, so a flipped byte anywhere in
    what the file holds changes the hash, whatever the zip layout.
    """
    h = hashlib.sha256()
    _feed(h, "", {k: v for k, v in payload.items() if k != INTEGRITY})
    return h.hexdigest()


def _feed(h, where: str, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{where}=tensor|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            # viewed as bytes so every dtype (bf16, bool) hashes without a numpy dtype of its own
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        h.update(f"{where}=dict|{len(value)}\n".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, f"{where}/{key!r}", value[key])
    elif isinstance(value, (list, tuple)):
        # one kind for both: JSON-like configs may come back as either
        h.update(f"{where}=seq|{len(value)}\n".encode())
        for i, item in enumerate(value):
            _feed(h, f"{where}[{i}]", item)
    else:
        h.update(f"{where}={type(value).__name__}|{value!r}\n".encode())


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically to ``path``, with the hash :func:`load_checkpoint` checks."""
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
    if checkpoint.mask_threshold is not None:
        payload["mask_threshold"] = float(checkpoint.mask_threshold)
    payload[INTEGRITY] = {"sha256": payload_hash(payload)}
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


def _check_path(path: str | Path) -> Path:
    from usvid.shipped import resolve_model

    path = resolve_model(check_path_text(path, "checkpoint"), "checkpoint")
    kind = OTHER_MODEL_FILES.get(path.suffix.lower())
    if kind is not None:
        raise InputError(
            f"{path}: is {kind}, not a usvid checkpoint; this needs the .pt checkpoint from `usvid train` "
            "(ONNX models and engines run in `usvid predict` and `usvid stream`)"
        )
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a checkpoint; give best.pt or last.pt inside a run folder")
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    return path


def _check_payload(path: Path, payload: dict[str, Any]) -> None:
    if payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a usvid checkpoint (no 'format': '{FORMAT}' entry)")
    if payload.get("version") != VERSION:
        raise InputError(
            f"{path}: checkpoint format version {payload.get('version')} is not supported (expected {VERSION}); "
            "re-export it with this usvid version"
        )
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise InputError(f"{path}: incomplete usvid checkpoint: no {', '.join(map(repr, missing))} entry; "
                         "it was not written by `usvid train`, or was edited")
    weights = payload["model"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise InputError(f"{path}: corrupted: 'model' is not a state dict (parameter name -> tensor)")
    for key, kind in (("model_config", dict), ("preprocess", dict), ("class_names", (list, tuple))):
        if not isinstance(payload[key], kind):
            raise InputError(f"{path}: corrupted: '{key}' is a {type(payload[key]).__name__}")


def _check_integrity(path: Path, payload: dict[str, Any]) -> bool:
    """Check the stored hash; False when there is none (a checkpoint written before it existed)."""
    stored = payload.get(INTEGRITY)
    if stored is None:
        # No hash to check: an entry name nobody writes is the one sign left of damage (to "integrity" itself).
        unknown = sorted(map(str, set(payload) - ENTRIES))
        if unknown and payload.get("format") == FORMAT:
            raise InputError(f"{path}: corrupted: no tensor hash, and entries usvid never writes ({', '.join(unknown)})")
        return False
    if not isinstance(stored, dict) or not isinstance(stored.get("sha256"), str):
        raise InputError(f"{path}: corrupted: its '{INTEGRITY}' entry is unreadable")
    if payload_hash(payload) != stored["sha256"]:
        raise InputError(
            f"{path}: corrupted: tensor hash mismatch (its contents changed after usvid saved it: a damaged "
            "download, copy or disk); use another copy, or last.pt / best.pt of the run"
        )
    return True


def _preprocess(path: Path, data: dict) -> PreprocessConfig:
    from usvid.models.config import MAX_INPUT_SIZE

    try:
        config = PreprocessConfig.from_dict(data)
    except (UsvidError, TypeError, ValueError) as err:
        raise InputError(f"{path}: corrupted: unusable preprocessing settings ({err})") from None
    if config.size > MAX_INPUT_SIZE:
        raise InputError(f"{path}: input size {config.size} is above the largest usvid accepts ({MAX_INPUT_SIZE})")
    warn_if_store_size_unknown(config, str(path))
    return config


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; one-line :class:`InputError` for anything else.

    Checks, in order: the file is a zip archive that the weights-only unpickler reads, it has usvid's entries,
    its hash matches (when it has one) and its weights are finite.
    """
    # usvid.models (torchvision) is imported here, not at module level: engines and ONNX runs import this
    # module without ever loading a checkpoint.
    from usvid.models.safe_load import load_weights_only, require_finite

    path = _check_path(path)
    payload = load_weights_only(path, map_location=map_location)
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not a usvid checkpoint (it holds a {type(payload).__name__}, not a dict)")
    # The hash first: a damaged file should be called damaged, not "not a usvid checkpoint".
    verified = _check_integrity(path, payload)
    _check_payload(path, payload)
    if not verified:
        log.warning("%s: written before usvid stored a tensor hash in checkpoints, so damage to it cannot be "
                    "detected", path)
    require_finite(payload["model"], path)
    return Checkpoint(
        model_config=payload["model_config"],
        state_dict=payload["model"],
        class_names=[str(c) for c in payload["class_names"]],
        preprocess=_preprocess(path, payload["preprocess"]),
        usvid_version=str(payload.get("usvid_version", "?")),
        train_state=payload.get("train_state") or {},
        mask_threshold=_mask_threshold(path, payload.get("mask_threshold")),
    )


def _mask_threshold(path: Path, value: Any) -> float | None:
    if value is None:
        return None
    if not is_mask_threshold(value):
        raise InputError(f"{path}: corrupted: mask threshold {value!r} does not lie strictly between 0 and 1")
    return float(value)
