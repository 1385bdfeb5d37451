"""Tiny freshly initialised checkpoints saved as usvid checkpoint files."""

from __future__ import annotations

from pathlib import Path

import torch

# The inference tests' tiny checkpoints (fixture ``tiny_checkpoints``): three classes, 64 px input, so the
# tiny variants' mask is 2x2.
CLASSES = ("benign", "malignant", "normal")
SIZE = 64
TINY = ("lanet_tiny", "rmtl_tiny", "resnet_tiny_cls")


def make_checkpoint(path: Path, name: str = "lanet_tiny", classes=("benign", "malignant"), *, seed: int = 0,
                    size: int = 64, store_size: int | None = None, bn_stats: bool = False, **overrides) -> Path:
    """``name`` with ``len(classes)`` outputs, initialised from ``seed`` and saved in eval mode at ``path``.

    ``bn_stats``: non-trivial BatchNorm running statistics, so eval-mode BN is not the identity (for parity
    tests).
    """
    from usvid.models import create_model

    from usvid.checkpoint import checkpoint_from_model, save_checkpoint
    from usvid.preprocess import PreprocessConfig

    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(classes), **overrides)
    if bn_stats:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
    preprocess = PreprocessConfig(size=size, store_size=store_size)
    save_checkpoint(path, checkpoint_from_model(model.eval(), list(classes), preprocess))
    return path
