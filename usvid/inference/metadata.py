"""What every exported model carries so inference never rebuilds it from flags: :class:`ModelInfo`.

The same fields travel in a checkpoint, in an ONNX file's ``metadata_props`` and in a TensorRT engine's
JSON sidecar, so a predictor loaded from any of them preprocesses and labels frames identically: ``usvid.preprocess``
holds the network size ``M`` and the store size ``S`` it was trained from (``store_size``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

from usvid import __version__
from usvid.boxes import deployed_threshold, is_mask_threshold
from usvid.errors import InputError
from usvid.preprocess import PreprocessConfig, warn_if_store_size_unknown

# Keys under which ModelInfo is stored in ONNX metadata_props (and the engine sidecar JSON).
META_PREFIX = "usvid."
INPUT_NAME = "input"
PROBS_NAME = "probs"
MASK_NAME = "mask"


@dataclass(frozen=True)
class ModelInfo:
    """Everything besides the weights that inference needs.

    ``model_hash`` identifies the weights and architecture (see :func:`model_hash`); TensorRT engine
    caches are keyed by it. ``has_mask`` is False for the vanilla classifier, whose graph has no mask output.
    ``mask_threshold``: the lesion-pixel threshold chosen for the model on its validation split
    (:mod:`usvid.training.calibrate`), the predictors' default; ``None`` when it was never calibrated (0.5).
    """

    class_names: tuple[str, ...]
    preprocess: PreprocessConfig
    model_config: dict
    model_hash: str
    has_mask: bool
    usvid_version: str = __version__
    mask_threshold: float | None = None

    @property
    def default_threshold(self) -> float:
        """The threshold a predictor uses when none is given: the calibrated one, else 0.5."""
        return deployed_threshold(self.mask_threshold)

    def to_metadata(self) -> dict[str, str]:
        """Flat ``{key: string}`` form for ONNX ``metadata_props``."""
        calibrated = ({} if self.mask_threshold is None
                      else {f"{META_PREFIX}mask_threshold": json.dumps(float(self.mask_threshold))})
        return calibrated | {
            f"{META_PREFIX}class_names": json.dumps(list(self.class_names)),
            f"{META_PREFIX}preprocess": json.dumps(self.preprocess.to_dict()),
            f"{META_PREFIX}model_config": json.dumps(self.model_config, sort_keys=True),
            f"{META_PREFIX}model_hash": self.model_hash,
            f"{META_PREFIX}has_mask": json.dumps(self.has_mask),
            f"{META_PREFIX}version": self.usvid_version,
        }

    @classmethod
    def from_metadata(cls, props: dict[str, str], where: str) -> ModelInfo:
        """Inverse of :meth:`to_metadata`; ``where`` names the file in error messages."""
        missing = [k for k in ("class_names", "preprocess", "model_config", "model_hash", "has_mask")
                   if f"{META_PREFIX}{k}" not in props]
        if missing:
            raise InputError(
                f"{where}: no usvid metadata ({', '.join(META_PREFIX + k for k in missing)} missing); "
                "export the model with `usvid export` so class names and preprocessing travel with it"
            )
        try:
            info = cls(
                class_names=tuple(json.loads(props[f"{META_PREFIX}class_names"])),
                preprocess=PreprocessConfig.from_dict(json.loads(props[f"{META_PREFIX}preprocess"])),
                model_config=json.loads(props[f"{META_PREFIX}model_config"]),
                model_hash=props[f"{META_PREFIX}model_hash"],
                has_mask=bool(json.loads(props[f"{META_PREFIX}has_mask"])),
                usvid_version=props.get(f"{META_PREFIX}version", "?"),
                mask_threshold=_threshold(props.get(f"{META_PREFIX}mask_threshold")),
            )
        except (ValueError, TypeError) as err:
            raise InputError(f"{where}: usvid metadata is corrupt ({err}); re-export the model") from None
        warn_if_store_size_unknown(info.preprocess, where)
        return info


def _threshold(text: str | None) -> float | None:
    if text is None:
        return None
    value = json.loads(text)
    if not is_mask_threshold(value):
        raise ValueError(f"mask threshold {value!r} does not lie strictly between 0 and 1")
    return float(value)


def model_hash(model_config: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (first 16 hex digits) of the architecture config and every weight's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(model_config, sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        # view as bytes so every dtype (bf16 included) hashes without a numpy round trip
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
